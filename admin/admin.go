// Package admin is the relay's HTTP + JSON admin API, used by the CLI and
// by automation: users, the queue, health. Every request but /healthz needs
// the bearer token the server keeps in data_dir/admin.token. The API goes
// through the storage owners' own methods; it keeps no state of its own.
package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"outbound/auth"
	"outbound/capture"
	"outbound/dkim"
	"outbound/events"
	"outbound/internal/netutil"
	"outbound/metrics"
	"outbound/queue"
	"outbound/quota"
	"outbound/route"
	"outbound/sendapi"
	"outbound/smarthost"
	"outbound/store"
	"outbound/suppression"
	"outbound/webhooks"
)

// Routes answers for users' routes (package route): the limits and SPF
// policy in force, and the operator's ceiling for limits set here.
type Routes interface {
	Policy(u *auth.User) route.Policy
	CheckLimits(l quota.Limits) error
}

var _ Routes = (*route.Router)(nil)

// Options configures the API handler.
type Options struct {
	Users *auth.Store
	Queue *queue.Queue
	Quota quota.Limiter
	// Routes gives each user's limits and SPF policy; required.
	Routes Routes
	// Bouncer fails a pending message with a notification (package delivery).
	Bouncer interface{ Bounce(id, reason string) error }
	Token   string
	Logger  *slog.Logger
	// Smarthosts stores the named upstreams users can be routed through.
	Smarthosts *smarthost.Store
	// LocalName is the EHLO name of connection tests (the relay's hostname).
	LocalName string
	// ImplicitTLSPort and STARTTLSPort are the submission listeners'
	// configured ports, which autoconfig announces too, for the SRV
	// records of GET /api/dns-records; 0 means 465 and 587.
	ImplicitTLSPort, STARTTLSPort int
	// ConnectionTestTimeout bounds each step of a connection test; 0
	// means the smarthost package's default.
	ConnectionTestTimeout time.Duration
	// AllowPrivateHosts lets senders give their own SMTP server on any
	// address (web.allow_private_hosts); otherwise it must be public
	// (netutil.CheckPublicHost). Operators may always set any host.
	AllowPrivateHosts bool
	// RefuseCaptureSmarthosts refuses (409) adding a smarthost of kind
	// capture or making one capture: set when the relay looks like
	// production and allow_capture_in_production is off, by the same rule
	// as the configuration's check of default_route.mode = "capture"
	// ([acme], or a submission or admin listener not on loopback).
	RefuseCaptureSmarthosts bool
	// Resolver resolves the host names senders give, for that check; nil
	// means net.DefaultResolver.
	Resolver netutil.Resolver
	// SPF checks users' sender domains for GET /api/users/{name}/spf;
	// nil: that endpoint answers 501.
	SPF SPFChecker
	// Operators are the web interface's operator accounts; nil: the
	// /api/operators endpoints answer 501.
	Operators *auth.Operators
	// Events is the delivery tracking log, for a message's timeline and
	// GET /api/events; nil: that endpoint answers 501 and messages show
	// no events.
	Events events.Store
	// Suppressions is the suppression list; nil: the /api/suppressions
	// endpoints answer 501.
	Suppressions suppression.Store
	// Webhooks are users' webhook endpoints; nil: the
	// /api/users/{name}/webhooks endpoints answer 501.
	Webhooks webhooks.Store
	// TLS reports the listeners' certificate for GET /api/tls (doctor);
	// nil: that endpoint answers 501.
	TLS func() TLSStatus
	// DKIM keeps the domains' signing keys; nil: the /api/dkim endpoints
	// answer 501.
	DKIM *dkim.Store
	// Capture keeps what the capture route kept instead of sending;
	// nil: the /api/capture endpoints answer 501.
	Capture capture.Store
	// APIKeys are the send API's keys; nil: the /api/users/{name}/api-keys
	// endpoints answer 501.
	APIKeys *auth.APIKeys
	// Templates are users' templates, the send API's store; nil: the
	// /api/users/{name}/templates endpoints answer 501.
	Templates *sendapi.Templates
	// Node is this relay node's name in a cluster ([store] node, the name
	// package ship puts in the events it ships): GET /api/queue then also
	// lists the messages other nodes hold, from the shared event log, and
	// actions on one of those answer 409 naming its node. "": no cluster.
	Node string
}

type api struct {
	Options
}

// Handler returns the admin API.
func Handler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{opts}
	mux := http.NewServeMux()
	// Metrics need no token: scrapers rarely carry one, and the admin
	// listener stays on loopback or a monitoring network.
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /api/users", a.authed(a.listUsers))
	mux.Handle("POST /api/users", a.authed(a.createUser))
	mux.Handle("GET /api/users/{name}", a.guarded(selfOnly, a.showUser))
	mux.Handle("PATCH /api/users/{name}", a.guarded(selfOnly, a.updateUser))
	mux.Handle("DELETE /api/users/{name}", a.authed(a.deleteUser))
	mux.Handle("PUT /api/users/{name}/password", a.authed(a.setPassword))
	mux.Handle("PUT /api/users/{name}/limits", a.authed(a.setLimits))
	mux.Handle("DELETE /api/users/{name}/limits", a.authed(a.clearLimits))
	mux.Handle("GET /api/usage", a.authed(a.listUsage))
	mux.Handle("GET /api/users/{name}/spf", a.guarded(selfOnly, a.userSPF))
	mux.Handle("GET /api/dns-records/{domain}", a.authed(a.dnsRecords))
	mux.Handle("GET /api/usage/{name}", a.guarded(selfOnly, a.showUsage))
	mux.Handle("GET /api/queue", a.guarded(anyone, a.listQueue))
	mux.Handle("GET /api/queue/{id}", a.guarded(a.ownMessage, a.showMessage))
	mux.Handle("GET /api/queue-stats", a.authed(a.queueStats))
	mux.Handle("POST /api/queue/{id}/retry", a.guarded(a.ownMessage, a.retryMessage))
	mux.Handle("POST /api/queue/{id}/bounce", a.guarded(a.ownMessage, a.bounceMessage))
	mux.Handle("DELETE /api/queue/{id}", a.guarded(a.ownMessage, a.deleteMessage))
	mux.Handle("POST /api/queue-flush", a.authed(a.flushQueue))
	mux.Handle("GET /api/messages/{id}", a.guarded(a.ownMessage, a.showMessageDetail))
	mux.Handle("GET /api/events", a.guarded(anyone, a.listEvents))
	mux.Handle("GET /api/suppressions", a.guarded(anyone, a.listSuppressions))
	mux.Handle("POST /api/suppressions", a.authed(a.addSuppression))
	mux.Handle("DELETE /api/suppressions/{addr}", a.guarded(anyone, a.deleteSuppression))
	a.registerSmarthosts(mux)
	a.registerOperators(mux)
	a.registerWebhooks(mux)
	a.registerTLS(mux)
	a.registerDKIM(mux)
	a.registerCapture(mux)
	a.registerAPIKeys(mux)
	a.registerTemplates(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
	return mux
}

// authed is an endpoint for operators only: a request made for a sender
// (ActingSenderHeader) is refused. Endpoints that a sender may use on
// itself are guarded instead.
func (a *api) authed(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return a.guarded(operatorsOnly, h)
}

// guarded checks the bearer token in constant time, then asks may whether
// the request may go on (it refuses what a sender may not do, see
// ActingSenderHeader), then runs h.
func (a *api) guarded(may func(*http.Request) error, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.Token)) != 1 {
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send 'Authorization: Bearer <contents of data_dir/admin.token>'")
			return
		}
		err := may(r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			status := http.StatusInternalServerError
			var he *httpError
			switch {
			case errors.As(err, &he):
				status = he.status
			case errors.Is(err, queue.ErrNotFound):
				status = http.StatusNotFound
				if e := a.heldElsewhere(r); e != nil {
					status, err = http.StatusConflict, e
				}
			case errors.Is(err, auth.ErrNoSuchUser):
				status = http.StatusNotFound
			case errors.Is(err, auth.ErrUserExists), errors.Is(err, queue.ErrBusy):
				status = http.StatusConflict
			case errors.Is(err, store.ErrUnavailable):
				// A cluster's database is down: changes wait for it.
				status = http.StatusServiceUnavailable
			}
			if status == http.StatusInternalServerError {
				a.Logger.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, status, err.Error())
		}
	})
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// decode reads a JSON body, refusing unknown fields so that a typo in a
// script is reported instead of silently ignored.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

// UserView is a user as the API lists it: never the password hash. One
// user's page (GET /api/users/{name}) is a UserDetail.
type UserView struct {
	Name      string    `json:"name"`
	AllowFrom []string  `json:"allow_from"`
	Route     string    `json:"route"`
	Created   time.Time `json:"created"`
}

func viewUser(u *auth.User) UserView {
	name := u.Route
	if name == "" {
		name = route.DefaultName
	}
	allow := u.AllowFrom
	if allow == nil {
		allow = []string{}
	}
	return UserView{Name: u.Name, AllowFrom: allow, Route: name, Created: u.Created}
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) error {
	users, err := a.Users.List()
	if err != nil {
		return err
	}
	out := make([]UserView, 0, len(users))
	for _, u := range users {
		out = append(out, viewUser(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// CreateUserRequest is the body of POST /api/users.
type CreateUserRequest struct {
	Name      string   `json:"name"`
	Password  string   `json:"password"`
	AllowFrom []string `json:"allow_from"`
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request) error {
	var req CreateUserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	u, err := a.Users.Add(req.Name, req.Password, req.AllowFrom)
	if err != nil {
		if errors.Is(err, auth.ErrUserExists) {
			return err
		}
		return badRequest("%v", err)
	}
	a.Logger.Info("user added", "user", u.Name)
	writeJSON(w, http.StatusCreated, viewUser(u))
	return nil
}

// deleteUser deletes a user and its own SMTP server, whose credentials
// no one else may use.
func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := a.Users.Delete(name); err != nil {
		return err
	}
	a.Logger.Info("user deleted", "user", name)
	if a.Smarthosts != nil {
		own, err := a.ownSmarthost(name)
		if err == nil && own != nil {
			err = a.Smarthosts.Delete(own.Name, a.usersOf)
		}
		if err != nil {
			return fmt.Errorf("user %s deleted, but not its own SMTP server: %w", name, err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
	return nil
}

// PasswordRequest is the body of PUT /api/users/{name}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

func (a *api) setPassword(w http.ResponseWriter, r *http.Request) error {
	var req PasswordRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := auth.ValidatePassword(req.Password); err != nil {
		return badRequest("%v", err)
	}
	if err := a.Users.SetPassword(name, req.Password); err != nil {
		return err
	}
	a.Logger.Info("password changed", "user", name)
	writeJSON(w, http.StatusOK, map[string]string{"updated": name})
	return nil
}

// listQueue lists this node's queue and, in a cluster, the messages other
// nodes hold as the shared event log tells them (listElsewhere: bounded,
// and marked with their node), filtered alike.
func (a *api) listQueue(w http.ResponseWriter, r *http.Request) error {
	status := r.URL.Query().Get("status")
	switch status {
	case "", "queued", "delivered", "failed":
	default:
		return badRequest("status must be queued, delivered or failed, got %q", status)
	}
	sender, user := actingSender(r), r.URL.Query().Get("user")
	mine := func(m *queue.Message) bool {
		if sender != "" && m.User != sender {
			return false // a sender sees only its own messages
		}
		return user == "" || m.User == user
	}
	keep := func(m *queue.Message) bool {
		if !mine(m) {
			return false
		}
		if status == "" {
			return true
		}
		for _, rc := range m.Recipients {
			if string(rc.Status) == status {
				return true
			}
		}
		return false
	}
	msgs, err := a.Queue.List(keep)
	if err != nil {
		return err
	}
	others, err := a.listElsewhere(mine)
	if errors.Is(err, store.ErrUnavailable) {
		// The shared log is down: this node's own queue is still worth
		// showing (the header says the listing is partial).
		a.Logger.Warn("listing only this node's queue: the shared event log cannot be reached", "err", err)
		w.Header().Set("Outbound-Partial", "other nodes' messages are missing: the shared store cannot be reached")
		others, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("listing other nodes' messages from the event log: %w", err)
	}
	for _, m := range others {
		if keep(m) {
			msgs = append(msgs, m)
		}
	}
	if msgs == nil {
		msgs = []*queue.Message{}
	}
	writeJSON(w, http.StatusOK, msgs)
	return nil
}

// heldElsewhere is the refusal (409) of an action on a message of
// /api/queue/{id} that is not in this node's queue because another node
// holds it (the shared event log says which), or nil. It is asked only
// once the request was let through: a sender's request for a message of
// someone else's was refused as not found (ownMessage) before.
func (a *api) heldElsewhere(r *http.Request) error {
	id := r.PathValue("id")
	if id == "" || !strings.Contains(r.Pattern, " /api/queue/{id}") {
		return nil
	}
	d, ok, err := a.elsewhere(id)
	if err != nil {
		a.Logger.Warn("reading the event log for a message not in the queue", "id", id, "err", err)
	}
	if !ok {
		return nil
	}
	return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("message %s is queued on node %s; do this on that node", id, d.Node)}
}

func (a *api) showMessage(w http.ResponseWriter, r *http.Request) error {
	m, err := a.Queue.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}
