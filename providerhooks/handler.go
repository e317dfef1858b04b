package providerhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"outbound/bounce"
	"outbound/events"
	"outbound/suppression"
)

// Messages finds our message for a provider's event (events.Bolt).
type Messages interface {
	// Match returns the queue ID and user of the message relayed with
	// this Message-ID (without angle brackets) or, failing that, with this
	// provider id (from the upstream's 250 reply); ok is false when
	// neither is known.
	Match(messageID, providerID string) (message, user string, ok bool, err error)
}

var _ Messages = (*events.Bolt)(nil)

// Recorder stores events that come from no queue change (events.Bolt).
// The events given it name their message by ID only; events.Bolt adds the
// message's tags and metadata from its earlier events, in the transaction
// that stores them (none when the message is gone by then).
type Recorder interface {
	Record(evs ...events.Event) error
}

// Suppressor puts addresses on the suppression list (suppression.Bolt).
type Suppressor interface {
	Add(e suppression.Entry) error
	Complained(user, addr, reason, message string) error
}

// Options configure a Handler.
type Options struct {
	// Secrets returns the webhook secrets of the smarthost named in the
	// path: zero Secrets (refused by every Verifier) when there is no such
	// smarthost or it has none.
	Secrets func(smarthost string) (Secrets, error)
	// Verifiers by the last element of the path ("mailgun", ...);
	// Verifiers(guard) is the full table.
	Verifiers map[string]Verifier
	Messages  Messages
	Events    Recorder
	// Suppressions may be nil: events are then only recorded.
	Suppressions Suppressor
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Count is told of each request's or event's result, by provider:
	// "refused", "recorded", "unmatched", "duplicate", "ignored", "error"
	// (a metric); may be nil.
	Count func(provider, result string)
	// MaxBody bounds a request's body (0: DefaultMaxBody).
	MaxBody int64
	Log     *slog.Logger
}

// DefaultMaxBody is the largest body taken: SendGrid batches up to a few
// hundred events, well under 1 MiB.
const DefaultMaxBody = 1 << 20

// dedupWindow is how long event ids are remembered: SendGrid retries for
// up to 72 hours.
const dedupWindow = 72 * time.Hour

// Verifiers is the table of every provider's Verifier, by path element.
// They share guard (one clock, one replay memory).
func Verifiers(guard Guard) map[string]Verifier {
	return map[string]Verifier{
		"mailgun":  Mailgun{Guard: guard},
		"sendgrid": SendGrid{Guard: guard},
		"postmark": Postmark{},
		"ses":      NewSES(guard.Now, nil, nil),
		"generic":  Generic{Guard: guard},
	}
}

// Handler serves POST /hooks/{smarthost}/{provider}. The smarthost in the
// path selects the secrets: each smarthost (each provider account or
// domain) has its own, so one leaked secret opens one path only.
type Handler struct {
	opts  Options
	mux   *http.ServeMux
	dedup *Replay
}

// NewHandler returns the handler for opts.
func NewHandler(opts Options) *Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Count == nil {
		opts.Count = func(string, string) {}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: opts, mux: http.NewServeMux(), dedup: NewReplay(dedupWindow, 200000)}
	h.mux.HandleFunc("POST /hooks/{smarthost}/{provider}", h.serve)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// result is the answer to a provider: counts only, nothing of ours.
type result struct {
	Recorded   int `json:"recorded"`
	Unmatched  int `json:"unmatched"`
	Duplicates int `json:"duplicates"`
	Ignored    int `json:"ignored"`
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	smarthost, provider := r.PathValue("smarthost"), r.PathValue("provider")
	v, ok := h.opts.Verifiers[provider]
	if !ok {
		http.Error(w, "no such provider: want one of /hooks/{smarthost}/"+strings.Join(h.providers(), "|"), http.StatusNotFound)
		return
	}
	log := h.opts.Log.With("smarthost", smarthost, "provider", provider, "remote", r.RemoteAddr)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.refuse(w, log, provider, &Error{Status: http.StatusRequestEntityTooLarge, Reason: fmt.Sprintf("body over %d bytes", h.opts.MaxBody)})
			return
		}
		h.refuse(w, log, provider, Malformed("reading the body: %v", err))
		return
	}
	secrets, err := h.opts.Secrets(smarthost)
	if err != nil {
		log.Error("provider webhook: reading the smarthost's secrets", "err", err)
		h.opts.Count(provider, "error")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	verified, err := v.Verify(r, body, secrets)
	if err != nil {
		h.refuse(w, log, provider, err)
		return
	}
	evs := verified.Events
	var res result
	for _, e := range evs {
		outcome, err := h.record(smarthost, e)
		if err != nil {
			log.Error("provider webhook: recording an event", "err", err, "kind", e.Kind, "message_id", e.MessageID)
			h.opts.Count(provider, "error")
			// Nothing is answered 2xx that is not stored: the provider
			// retries the same request, which must not be refused as
			// a replay, so its token is given back; the events
			// recorded already are skipped then by their ids.
			verified.Claim.Release()
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h.opts.Count(provider, outcome)
		switch outcome {
		case "recorded":
			res.Recorded++
		case "unmatched":
			res.Unmatched++
			// Not an error: the provider's account may also send mail
			// that never went through this relay.
			log.Info("provider event for no message of ours", "kind", e.Kind, "message_id", e.MessageID,
				"provider_id", e.ProviderID, "recipient", e.Recipient)
		case "duplicate":
			res.Duplicates++
		}
	}
	if len(evs) == 0 {
		res.Ignored++
		h.opts.Count(provider, "ignored")
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

func (h *Handler) refuse(w http.ResponseWriter, log *slog.Logger, provider string, err error) {
	status := StatusOf(err)
	log.Warn("provider webhook refused", "status", status, "reason", err.Error())
	h.opts.Count(provider, "refused")
	if status == http.StatusInternalServerError {
		http.Error(w, "internal error", status)
		return
	}
	var e *Error
	errors.As(err, &e)
	http.Error(w, e.Reason, status)
}

func (h *Handler) providers() []string {
	var out []string
	for _, p := range []string{"mailgun", "sendgrid", "postmark", "ses", "generic"} {
		if _, ok := h.opts.Verifiers[p]; ok {
			out = append(out, p)
		}
	}
	return out
}

// record matches e to our message, suppresses its recipient when the
// event calls for it, and records it on the message's timeline. The
// suppression goes first: adding it again is harmless, so a retry after a
// failure in between leaves both stored once.
func (h *Handler) record(smarthost string, e Event) (string, error) {
	if e.EventID != "" && h.dedup.Seen(smarthost+"\x00"+e.EventID, h.opts.Now()) {
		return "duplicate", nil
	}
	outcome, err := h.store(smarthost, e)
	if err != nil && e.EventID != "" {
		h.dedup.Forget(smarthost + "\x00" + e.EventID)
	}
	return outcome, err
}

func (h *Handler) store(smarthost string, e Event) (outcome string, err error) {
	var ok bool
	var m struct{ Message, User string }
	m.Message, m.User, ok, err = h.opts.Messages.Match(e.MessageID, e.ProviderID)
	if err != nil {
		return "", err
	}
	if !ok {
		return "unmatched", nil
	}
	at := e.At
	if at.IsZero() {
		at = h.opts.Now()
	}
	// No tags or metadata: the Recorder copies the message's (Recorder).
	ev := events.Event{At: at, Kind: e.Kind, Message: m.Message, User: m.User, Recipient: e.Recipient,
		Upstream: smarthost, Reply: e.Reply, ProviderID: e.ProviderID}
	switch e.Kind {
	case events.ProviderBounced, events.ProviderDropped:
		v := bounce.Classify(0, "", e.Reply)
		class := "temporary"
		if e.Permanent {
			class = "permanent"
		}
		ev.Detail = class + ", " + string(v.Category)
		if e.Kind == events.ProviderBounced && e.Permanent && suppression.CallsFor(v.Category) && m.User != "" && h.opts.Suppressions != nil {
			err = h.opts.Suppressions.Add(suppression.Entry{User: m.User, Addr: e.Recipient, Kind: suppression.Bounce,
				Reason: e.Reply, Message: m.Message})
		}
	case events.ProviderComplained:
		// The relay's own mail (DSNs, user "") goes on no list, as in
		// delivery.
		if m.User != "" && h.opts.Suppressions != nil {
			err = h.opts.Suppressions.Complained(m.User, e.Recipient, e.Reply, m.Message)
		}
	}
	if err != nil {
		return "", fmt.Errorf("suppressing %s: %w", e.Recipient, err)
	}
	if err := h.opts.Events.Record(ev); err != nil {
		return "", err
	}
	return "recorded", nil
}
