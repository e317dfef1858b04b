// Package sendapi is the HTTP send API for apps: POST /v1/messages with an
// API key turns a JSON request into a MIME message and hands it to the
// relay's own submission path (relay.Backend.Submit), so that it meets the
// same sender, limit, SPF, queue and delivery rules as a message sent over
// SMTP. The 202 answer goes out only once the message is durably queued.
package sendapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"outbound/auth"
	"outbound/queue"
	"outbound/relay"
	"outbound/store"
)

// openAPI is the API's OpenAPI 3.1 description, served at
// /v1/openapi.json; TestOpenAPIDescribesEveryRoute keeps it in step.
//
//go:embed openapi.json
var openAPI []byte

// Keys verifies API keys (auth.APIKeys).
type Keys interface {
	Verify(key string) (*auth.APIKey, error)
}

// Submitter queues a message as the SMTP path does (relay.Backend).
type Submitter interface {
	Submit(relay.Submission) (string, *relay.Refusal)
}

var (
	_ Keys      = (*auth.APIKeys)(nil)
	_ Submitter = (*relay.Backend)(nil)
)

// Options configures a Handler.
type Options struct {
	Keys  Keys
	Relay Submitter
	// DB holds the Idempotency-Key answers (idempotency.go), which are
	// written in the queue's transaction: the node's own bbolt file.
	DB store.DB
	// TemplatesDB holds the stored templates (templates.go), where the
	// admin API keeps them (the store several nodes share); nil: DB.
	TemplatesDB store.DB
	// SharedDB, on a node of a cluster, is the store the nodes share:
	// Idempotency-Keys are claimed there across the nodes
	// (idempotency_shared.go). nil: one relay, whose own answers suffice.
	SharedDB store.DB
	// Node names this node in SharedDB's claims (default: the host name).
	Node string
	// Hostname is the right-hand side of the Message-IDs the API makes.
	Hostname string
	// MaxMessageBytes is the relay's max_message_bytes: the built message
	// is held to it by the relay; the JSON body may be larger by what
	// base64 and JSON add.
	MaxMessageBytes int64
	Logger          *slog.Logger
	Now             func() time.Time
}

// Handler serves the send API.
type Handler struct {
	opts Options
	log  *slog.Logger
	idem *idempotency
	// shared claims Idempotency-Keys across the nodes; nil on one relay.
	shared *sharedIdempotency
	tmpl   *templates
	mux    *http.ServeMux

	// inflight holds the Idempotency-Keys of requests being processed,
	// so that two at once with one key cannot both queue.
	mu       sync.Mutex
	inflight map[string]bool
}

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	idem, err := newIdempotency(opts.DB, opts.Now)
	if err != nil {
		return nil, err
	}
	tdb := opts.TemplatesDB
	if tdb == nil {
		tdb = opts.DB
	}
	tmpl, err := newTemplates(tdb, opts.Now)
	if err != nil {
		return nil, err
	}
	h := &Handler{opts: opts, log: opts.Logger, idem: idem, tmpl: tmpl, inflight: map[string]bool{}}
	if opts.SharedDB != nil {
		node := opts.Node
		if node == "" {
			node, _ = os.Hostname()
		}
		if h.shared, err = newSharedIdempotency(opts.SharedDB, node, opts.Now, opts.Logger); err != nil {
			return nil, err
		}
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST /v1/messages", h.send)
	h.registerTemplates(h.mux)
	h.mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, openAPI)
	})
	// A known path with another method: 405 in JSON, as every answer is.
	for _, path := range []string{"/v1/messages", "/v1/templates", "/v1/templates/{name}", "/v1/templates/{name}/render", "/v1/openapi.json"} {
		h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+" (see /v1/openapi.json)", "")
		})
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: the send API is POST /v1/messages", "")
	})
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// PurgeIdempotency deletes Idempotency-Key answers older than
// IdempotencyTTL, the node's own and (on a cluster node) the shared
// store's; the server calls it periodically.
func (h *Handler) PurgeIdempotency() error {
	err := h.idem.Purge()
	if h.shared != nil {
		err = errors.Join(err, h.shared.Purge())
	}
	return err
}

// SettleIdempotency, on a cluster node, writes to the shared store the
// Idempotency-Key answers and releases that could not be written when
// their requests ended; the server calls it periodically. On one relay it
// does nothing.
func (h *Handler) SettleIdempotency() error {
	if h.shared == nil {
		return nil
	}
	return h.shared.Settle()
}

// maxBodyBytes bounds a request body: the largest message, base64-encoded
// (4/3), plus room for the JSON around it.
func (h *Handler) maxBodyBytes() int64 {
	return h.opts.MaxMessageBytes*4/3 + 1<<20
}

// accepted is the 202 answer's body.
type accepted struct {
	// ID is the relay's queue ID, which the event log, webhooks and
	// `outbound queue` name the message by.
	ID        string `json:"id"`
	MessageID string `json:"message_id"`
	// Template and TemplateVersion name the template version used, if
	// one was.
	Template        string `json:"template,omitempty"`
	TemplateVersion int    `json:"template_version,omitempty"`
}

// authenticate returns the key of the request's bearer token, or answers
// 401 (or 503) and returns nil.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) *auth.APIKey {
	key, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="outbound"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "an API key is required: Authorization: Bearer obk_...", "")
		return nil
	}
	rec, err := h.opts.Keys.Verify(key)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="outbound", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "the API key is not valid (unknown or revoked)", "")
			return nil
		}
		h.log.Error("API key lookup failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "temporary local problem; please try again later", "")
		return nil
	}
	return rec
}

func (h *Handler) send(w http.ResponseWriter, r *http.Request) {
	rec := h.authenticate(w, r)
	if rec == nil {
		return
	}
	user := rec.User

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBodyBytes()))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large",
				"the request body is larger than "+strconv.FormatInt(tooBig.Limit, 10)+" bytes; the message limit is "+strconv.FormatInt(h.opts.MaxMessageBytes, 10)+" bytes", "")
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", "the request body could not be read", "")
		return
	}

	idemKey := r.Header.Get("Idempotency-Key")
	// held is this request's claim of idemKey in the shared store, if it
	// made one: published once the message is queued, released if not.
	var held *claim
	queued := false
	if idemKey != "" {
		if len(idemKey) > 255 {
			writeError(w, http.StatusBadRequest, "bad_request", "Idempotency-Key is longer than 255 characters", "Idempotency-Key")
			return
		}
		slot := user + "\x00" + idemKey
		if !h.claim(slot) {
			writeBusy(w)
			return
		}
		defer h.unclaim(slot)
		prev, err := h.idem.lookup(user, idemKey)
		if err != nil {
			h.log.Error("idempotency lookup failed", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "temporary local problem; please try again later", "")
			return
		}
		if prev != nil {
			replay(w, prev, body)
			return
		}
		if h.shared != nil {
			v, err := h.shared.claim(user, idemKey, requestHash(body))
			switch {
			case err != nil:
				h.log.Error("claiming an Idempotency-Key in the shared store failed", "err", err)
				writeError(w, http.StatusServiceUnavailable, "unavailable", "temporary local problem; please try again later", "")
				return
			case v.answer != nil:
				replay(w, v.answer, body)
				return
			case v.busy:
				writeBusy(w)
				return
			}
			if held = v.mine; held != nil {
				// Deferred after unclaim, so it runs first: the key is
				// released while this node still holds its slot.
				defer func() {
					if !queued {
						h.shared.release(user, idemKey, held)
					}
				}()
			}
		}
	}

	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not the JSON this endpoint takes: "+err.Error(), jsonField(err))
		return
	}
	if fe := checkLabels(&req); fe != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", fe.msg, fe.field)
		return
	}
	ans := accepted{}
	if req.Template != "" {
		if req.Subject != "" || req.Text != "" || req.HTML != "" {
			writeError(w, http.StatusUnprocessableEntity, "invalid_request", "give either template (with data) or subject, text and html, not both", "template")
			return
		}
		t, err := h.tmpl.get(user, req.Template, req.TemplateVersion)
		if err != nil {
			h.templateError(w, err, req.Template)
			return
		}
		out, fe := t.render(req.Data)
		if fe != nil {
			writeError(w, http.StatusUnprocessableEntity, "template_error", fe.msg, fe.field)
			return
		}
		req.Subject, req.Text, req.HTML = out.Subject, out.Text, out.HTML
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		// The message records the version it was made from.
		req.Headers["X-Outbound-Template"] = fmt.Sprintf("%s; version=%d", t.Name, t.Version)
		ans.Template, ans.TemplateVersion = t.Name, t.Version
	} else if req.Data != nil || req.TemplateVersion != 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", "data and template_version go with template", "data")
		return
	}
	now := h.opts.Now()
	msg, fe := build(&req, h.opts.Hostname, now)
	if fe != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", fe.msg, fe.field)
		return
	}

	sub := relay.Submission{
		User: user, From: msg.from, To: msg.rcpts, Message: msg.body,
		// The key's prefix stays out of the Received header: recipients
		// see that header, and the prefix is part of the key.
		RemoteIP: remoteIP(r), Client: "send-api", Protocol: "HTTPSA",
		Tags: req.Tags, Metadata: req.Metadata,
	}
	if idemKey != "" {
		reqHash := requestHash(body)
		sub.AlsoWrite = func(id string) queue.TxHook {
			a := ans
			a.ID, a.MessageID = id, msg.messageID
			b, _ := json.Marshal(a)
			return h.idem.record(user, idemKey, &answer{Request: reqHash, Status: http.StatusAccepted, Body: b, Created: now})
		}
	}
	id, refusal := h.opts.Relay.Submit(sub)
	if refusal != nil {
		h.log.Info("send API message refused", "user", user, "key", rec.Prefix, "reply", refusal.Error())
		writeRefusal(w, refusal)
		return
	}
	queued = true
	h.log.Info("send API message queued", "id", id, "user", user, "key", rec.Prefix, "rcpts", len(msg.rcpts))
	ans.ID, ans.MessageID = id, msg.messageID
	b, _ := json.Marshal(ans)
	if held != nil {
		// The answer the queue's transaction stored locally, for the
		// other nodes.
		h.shared.publish(user, idemKey, held, &answer{Request: requestHash(body), Status: http.StatusAccepted, Body: b, Created: now})
	}
	writeJSON(w, http.StatusAccepted, b)
}

// replay answers a request whose Idempotency-Key has the answer prev: prev
// again when the request is the same, 422 when it is another.
func replay(w http.ResponseWriter, prev *answer, body []byte) {
	if !bytes.Equal(prev.Request, requestHash(body)) {
		writeError(w, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this Idempotency-Key was used within 24 hours for a different request; use a new key for a new message", "Idempotency-Key")
		return
	}
	w.Header().Set("Idempotent-Replayed", "true")
	writeJSON(w, prev.Status, prev.Body)
}

// writeBusy answers a request whose Idempotency-Key another request (on
// this node or another) is processing.
func writeBusy(w http.ResponseWriter) {
	writeError(w, http.StatusConflict, "conflict", "a request with this Idempotency-Key is being processed; retry once it has been answered", "Idempotency-Key")
}

func (h *Handler) claim(slot string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inflight[slot] {
		return false
	}
	h.inflight[slot] = true
	return true
}

func (h *Handler) unclaim(slot string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.inflight, slot)
}

func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return "", false
	}
	return strings.TrimSpace(key), true
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// jsonField names the field a decoding error is about, when it says.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

// errorBody is every error's JSON: {"error": {"code", "message", "field"}}.
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	// Code is a stable word a program can switch on.
	Code string `json:"code"`
	// Message says what happened and what to do, in the relay's words
	// for a refusal of the message.
	Message string `json:"message"`
	// Field is the request field at fault, if one is.
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	b, _ := json.Marshal(errorBody{apiError{Code: code, Message: msg, Field: field}})
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
	w.Write([]byte("\n"))
}

// writeRefusal answers a message the relay refused with the HTTP status a
// REST client expects and the relay's own words: the same text an SMTP
// client reads after its code.
func writeRefusal(w http.ResponseWriter, r *relay.Refusal) {
	status, code, field := refusalStatus(r)
	if r.RetryIn > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(r.RetryIn.Seconds()))))
	}
	writeError(w, status, code, r.Message, field)
}

// refusalStatus maps the relay's SMTP replies (relay/replies.go) to HTTP.
func refusalStatus(r *relay.Refusal) (status int, code, field string) {
	e := r.EnhancedCode
	switch {
	case r.Code == 450 && e == [3]int{4, 7, 1}:
		return http.StatusTooManyRequests, "rate_limited", ""
	case r.Code == 550 && e == [3]int{5, 7, 1}:
		return http.StatusForbidden, "forbidden", "from"
	case r.Code == 550 && e == [3]int{5, 7, 23}:
		return http.StatusForbidden, "spf_not_aligned", "from"
	case r.Code == 552:
		return http.StatusRequestEntityTooLarge, "too_large", ""
	case r.Code == 530:
		return http.StatusUnauthorized, "unauthorized", ""
	case e == [3]int{5, 1, 1}:
		return http.StatusUnprocessableEntity, "recipient_suppressed", "to"
	case e == [3]int{5, 1, 3}, e == [3]int{4, 5, 3}:
		return http.StatusUnprocessableEntity, "invalid_recipients", "to"
	case r.Code >= 500:
		return http.StatusUnprocessableEntity, "message_refused", ""
	}
	// 451 4.3.0, 452 4.3.1 (storage or memory), 451 4.7.24 (SPF lookup).
	return http.StatusServiceUnavailable, "unavailable", ""
}
