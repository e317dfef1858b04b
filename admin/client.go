package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"outbound/delivery"
	"outbound/queue"
	"outbound/suppression"
)

// Client is a typed client of the admin API: one method per endpoint, each
// answering with the API's own types. The CLI uses it, and so do the tests;
// whatever else speaks to a running relay should too, so that the API has
// one Go spelling. It is safe for concurrent use.
type Client struct {
	base, token string
	http        *http.Client
	// sender, when set, is sent as ActingSenderHeader (see ActingFor).
	sender string
}

// NewClient returns a client of the admin API at baseURL
// ("http://127.0.0.1:8025") that sends token as its bearer token. A nil
// httpClient means http.DefaultClient, which has no timeout.
func NewClient(baseURL, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{base: baseURL, token: token, http: httpClient}
}

// ActingFor returns a client whose requests act for sender: the API then
// lets them act only on that sender itself (ActingSenderHeader). The web
// interface uses one for each signed-in sender.
func (c *Client) ActingFor(sender string) *Client {
	cc := *c
	cc.sender = sender
	return &cc
}

// Error is an answer of the API with an error status. Its text is the API's
// own message, which says what to fix; callers that need the kind of
// refusal read Status (docs/api.md lists what each means).
type Error struct {
	// Status is the HTTP status: 400 bad input, 401 token, 404 not found,
	// 409 conflict, 422 a failed connection test, 500 the server's fault.
	Status int
	// Message is the API's "error" text; "" when the answer had none.
	Message string
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("admin API: %d %s", e.Status, http.StatusText(e.Status))
}

// do sends in (nil: no body) as JSON and decodes the JSON answer into out
// (nil: ignored). An answer with an error status is decoded into out as
// well, for the answers that carry details besides the message (a refused
// smarthost's connection test), and returned as an *Error.
func (c *Client) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	if c.sender != "" {
		req.Header.Set(ActingSenderHeader, c.sender)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the relay's admin API at %s: is `outbound serve` running? (%w)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var decodeErr error
	if out != nil {
		decodeErr = json.Unmarshal(data, out)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(data, &e)
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if decodeErr != nil {
		return fmt.Errorf("admin API: %s %s: unexpected answer: %w", method, path, decodeErr)
	}
	return nil
}

// get is do for the endpoints that answer with one value of type T.
func get[T any](c *Client, method, path string, in any) (*T, error) {
	var v T
	if err := c.do(method, path, in, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// list is GET path for the endpoints that answer with a list.
func list[T any](c *Client, path string) ([]T, error) {
	var v []T
	if err := c.do("GET", path, nil, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func userPath(name string) string { return "/api/users/" + url.PathEscape(name) }

func smarthostPath(name string) string { return "/api/smarthosts/" + url.PathEscape(name) }

func messagePath(id string) string { return "/api/queue/" + url.PathEscape(id) }

// Health is GET /healthz: nil when the server answers.
func (c *Client) Health() error { return c.do("GET", "/healthz", nil, nil) }

// Users is GET /api/users.
func (c *Client) Users() ([]UserView, error) {
	return list[UserView](c, "/api/users")
}

// CreateUser is POST /api/users.
func (c *Client) CreateUser(req CreateUserRequest) (*UserView, error) {
	return get[UserView](c, "POST", "/api/users", req)
}

// User is GET /api/users/{name}.
func (c *Client) User(name string) (*UserDetail, error) {
	return get[UserDetail](c, "GET", userPath(name), nil)
}

// UpdateUser is PATCH /api/users/{name}.
func (c *Client) UpdateUser(name string, req UpdateUserRequest) (*UserDetail, error) {
	return get[UserDetail](c, "PATCH", userPath(name), req)
}

// DeleteUser is DELETE /api/users/{name}.
func (c *Client) DeleteUser(name string) error {
	return c.do("DELETE", userPath(name), nil, nil)
}

// SetPassword is PUT /api/users/{name}/password.
func (c *Client) SetPassword(name, password string) error {
	return c.do("PUT", userPath(name)+"/password", PasswordRequest{Password: password}, nil)
}

// SetLimits is PUT /api/users/{name}/limits: the user's usage under its
// new limits.
func (c *Client) SetLimits(name string, req LimitsRequest) (*UsageView, error) {
	return get[UsageView](c, "PUT", userPath(name)+"/limits", req)
}

// ClearLimits is DELETE /api/users/{name}/limits: the user's usage under
// its route's limits.
func (c *Client) ClearLimits(name string) (*UsageView, error) {
	return get[UsageView](c, "DELETE", userPath(name)+"/limits", nil)
}

// Usage is GET /api/usage: every user's.
func (c *Client) Usage() ([]UsageView, error) {
	return list[UsageView](c, "/api/usage")
}

// UserUsage is GET /api/usage/{name}.
func (c *Client) UserUsage(name string) (*UsageView, error) {
	return get[UsageView](c, "GET", "/api/usage/"+url.PathEscape(name), nil)
}

// QueueFilter chooses messages for Messages; the zero value is all.
type QueueFilter struct {
	// Status keeps the messages with a recipient in that status
	// ("queued", "delivered", "failed").
	Status string
	// User keeps the messages that login submitted.
	User string
}

// Messages is GET /api/queue?status=S&user=U: the messages f keeps.
func (c *Client) Messages(f QueueFilter) ([]*queue.Message, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.User != "" {
		q.Set("user", f.User)
	}
	path := "/api/queue"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return list[*queue.Message](c, path)
}

// Message is GET /api/queue/{id}.
func (c *Client) Message(id string) (*queue.Message, error) {
	return get[queue.Message](c, "GET", messagePath(id), nil)
}

// QueueStats is GET /api/queue-stats.
func (c *Client) QueueStats() (*QueueStats, error) {
	return get[QueueStats](c, "GET", "/api/queue-stats", nil)
}

// Retry is POST /api/queue/{id}/retry.
func (c *Client) Retry(id string) error {
	return c.do("POST", messagePath(id)+"/retry", nil, nil)
}

// Bounce is POST /api/queue/{id}/bounce.
func (c *Client) Bounce(id string) error {
	return c.do("POST", messagePath(id)+"/bounce", nil, nil)
}

// DeleteMessage is DELETE /api/queue/{id}.
func (c *Client) DeleteMessage(id string) error {
	return c.do("DELETE", messagePath(id), nil, nil)
}

// FlushQueue is POST /api/queue-flush?upstream=NAME: every pending
// message, or those of one route ("default" for the default route), for
// "".
func (c *Client) FlushQueue(upstream string) (*FlushResult, error) {
	return get[FlushResult](c, "POST", "/api/queue-flush?upstream="+url.QueryEscape(upstream), nil)
}

// Smarthosts is GET /api/smarthosts.
func (c *Client) Smarthosts() ([]SmarthostView, error) {
	return list[SmarthostView](c, "/api/smarthosts")
}

// Smarthost is GET /api/smarthosts/{name}.
func (c *Client) Smarthost(name string) (*SmarthostView, error) {
	return get[SmarthostView](c, "GET", smarthostPath(name), nil)
}

// AddSmarthost is POST /api/smarthosts. When the connection test fails and
// the request does not force the save, the answer is both the result
// (with the test's report) and an *Error of status 422.
func (c *Client) AddSmarthost(req SmarthostRequest) (*SmarthostResult, error) {
	return saveSmarthost(c, "POST", "/api/smarthosts", req)
}

// UpdateSmarthost is PUT /api/smarthosts/{name}; a failed connection test
// answers as for AddSmarthost.
func (c *Client) UpdateSmarthost(name string, req SmarthostUpdateRequest) (*SmarthostResult, error) {
	return saveSmarthost(c, "PUT", smarthostPath(name), req)
}

// saveSmarthost answers with the result even when the save is refused:
// a 422 carries the connection test's report.
func saveSmarthost(c *Client, method, path string, req any) (*SmarthostResult, error) {
	var res SmarthostResult
	err := c.do(method, path, req, &res)
	return &res, err
}

// DeleteSmarthost is DELETE /api/smarthosts/{name}.
func (c *Client) DeleteSmarthost(name string) error {
	return c.do("DELETE", smarthostPath(name), nil, nil)
}

// TestSmarthost is POST /api/smarthosts/{name}/test. A failed test is not
// an error: the report says so (Test.OK).
func (c *Client) TestSmarthost(name string) (*SmarthostResult, error) {
	return get[SmarthostResult](c, "POST", smarthostPath(name)+"/test", nil)
}

// UserSPF is GET /api/users/{name}/spf: each sender domain of the user
// checked against the SPF identity of its route.
func (c *Client) UserSPF(user string) (*SPFReport, error) {
	return get[SPFReport](c, "GET", userPath(user)+"/spf", nil)
}

// SetOwnSmarthost is PUT /api/users/{name}/smarthost: the user's own SMTP
// server, tested, saved and routed to; a failed connection test answers
// as for AddSmarthost.
func (c *Client) SetOwnSmarthost(user string, req OwnSmarthostRequest) (*SmarthostResult, error) {
	return saveSmarthost(c, "PUT", userPath(user)+"/smarthost", req)
}

// DeleteOwnSmarthost is DELETE /api/users/{name}/smarthost: back to the
// default route, the user's own SMTP server deleted.
func (c *Client) DeleteOwnSmarthost(user string) (*UserDetail, error) {
	return get[UserDetail](c, "DELETE", userPath(user)+"/smarthost", nil)
}

// TestConnection is POST /api/connection-test: settings tested, not saved.
// A failed test is not an error: the report says so (OK).
func (c *Client) TestConnection(req ConnectionTestRequest) (*delivery.ConnectionReport, error) {
	return get[delivery.ConnectionReport](c, "POST", "/api/connection-test", req)
}

// SetRoutes is POST /api/routes.
func (c *Client) SetRoutes(req RouteRequest) (*RouteResult, error) {
	return get[RouteResult](c, "POST", "/api/routes", req)
}

// RotateKey is POST /api/key-rotate.
func (c *Client) RotateKey() (*KeyRotation, error) {
	return get[KeyRotation](c, "POST", "/api/key-rotate", nil)
}

// MessageDetail is GET /api/messages/{id}: the message with its events.
func (c *Client) MessageDetail(id string) (*MessageDetail, error) {
	return get[MessageDetail](c, "GET", "/api/messages/"+url.PathEscape(id), nil)
}

// EventFilter chooses events for Events; the zero value is the first
// page of all.
type EventFilter struct {
	// User keeps that login's messages' events.
	User string
	// Since keeps events at or after this time.
	Since time.Time
	// Cursor continues after an earlier page (its NextCursor).
	Cursor string
	// Limit is the most events in the page (0: the server's maximum).
	Limit int
}

// Events is GET /api/events?user=&since=&cursor=&limit=: one page.
func (c *Client) Events(f EventFilter) (*EventsPage, error) {
	q := url.Values{}
	if f.User != "" {
		q.Set("user", f.User)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/api/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return get[EventsPage](c, "GET", path, nil)
}

// Suppressions is GET /api/suppressions?user=U: the active entries of
// user's list ("" for every one).
func (c *Client) Suppressions(user string) ([]suppression.Entry, error) {
	path := "/api/suppressions"
	if user != "" {
		path += "?user=" + url.QueryEscape(user)
	}
	return list[suppression.Entry](c, path)
}

// AddSuppression is POST /api/suppressions: the entry as stored.
func (c *Client) AddSuppression(req SuppressionRequest) (*suppression.Entry, error) {
	return get[suppression.Entry](c, "POST", "/api/suppressions", req)
}

// DeleteSuppression is DELETE /api/suppressions/{addr}?user=U: lifts the
// suppression of addr on user's list, or on every list for "".
func (c *Client) DeleteSuppression(addr, user string) error {
	path := "/api/suppressions/" + url.PathEscape(addr)
	if user != "" {
		path += "?user=" + url.QueryEscape(user)
	}
	return c.do("DELETE", path, nil, nil)
}
