package providerhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"outbound/events"
)

// Generic verifies the relay's own signed format, for providers without
// a scheme of their own or a bridge script: the Outbound-Webhook-Signature
// header is "v1=" and the hex HMAC-SHA256, under the smarthost's generic
// secret, of the Outbound-Webhook-Timestamp header (Unix seconds), a "."
// and the body. A timestamp more than MaxAge off is refused, and so is a
// signature seen before. The body is one JSON object, or an array of them:
//
//	{"message_id": "<id@host>", "provider_id": "...", "recipient": "a@b",
//	 "event": "delivered|bounced|complained|dropped", "reply": "550 5.1.1 ...",
//	 "permanent": true, "event_id": "...", "at": "2026-01-02T15:04:05Z"}
//
// message_id or provider_id is needed to find the message; the others but
// recipient and event may be left out.
type Generic struct{ Guard Guard }

var _ Verifier = Generic{}

// The generic webhook's headers.
const (
	GenericSignatureHeader = "Outbound-Webhook-Signature"
	GenericTimestampHeader = "Outbound-Webhook-Timestamp"
)

type genericEvent struct {
	MessageID  string    `json:"message_id"`
	ProviderID string    `json:"provider_id"`
	Recipient  string    `json:"recipient"`
	Event      string    `json:"event"`
	Reply      string    `json:"reply"`
	Permanent  bool      `json:"permanent"`
	EventID    string    `json:"event_id"`
	At         time.Time `json:"at"`
}

// GenericSign is the Outbound-Webhook-Signature of body sent at timestamp
// (Unix seconds) under secret.
func GenericSign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks the signature, parses the events, and takes the request's
// token last.
func (g Generic) Verify(r *http.Request, body []byte, s Secrets) (Verified, error) {
	if s.GenericSecret == "" {
		return Verified{}, Unauthorized("no generic webhook secret is set for this smarthost")
	}
	ts, sig := r.Header.Get(GenericTimestampHeader), strings.ToLower(r.Header.Get(GenericSignatureHeader))
	if ts == "" || sig == "" {
		return Verified{}, Unauthorized("no signature")
	}
	// sig is lowercased before both the comparison and the token: a
	// replay in capitals must not pass as another token.
	if !hmac.Equal([]byte(sig), []byte(GenericSign(s.GenericSecret, ts, body))) {
		return Verified{}, Unauthorized("bad signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Verified{}, Malformed("timestamp %q is not a number", ts)
	}
	evs, err := genericEvents(body)
	if err != nil {
		return Verified{}, err
	}
	claim, err := g.Guard.Check(time.Unix(secs, 0), "generic:"+sig)
	if err != nil {
		return Verified{}, err
	}
	return Verified{Events: evs, Claim: claim}, nil
}

// genericEvents parses the body: one event or an array of them.
func genericEvents(body []byte) ([]Event, error) {
	var batch []genericEvent
	var err error
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		batch = make([]genericEvent, 1)
		err = json.Unmarshal(t, &batch[0])
	} else {
		err = json.Unmarshal(t, &batch)
	}
	if err != nil {
		return nil, Malformed("not a JSON event or array of events: %v", err)
	}
	out := make([]Event, 0, len(batch))
	for _, d := range batch {
		e := Event{MessageID: strings.Trim(strings.TrimSpace(d.MessageID), "<>"), ProviderID: d.ProviderID,
			Recipient: d.Recipient, Reply: d.Reply, Permanent: d.Permanent, EventID: d.EventID, At: d.At}
		switch d.Event {
		case "delivered":
			e.Kind = events.ProviderDelivered
		case "bounced":
			e.Kind = events.ProviderBounced
		case "complained":
			e.Kind = events.ProviderComplained
		case "dropped":
			e.Kind = events.ProviderDropped
		default:
			return nil, Malformed("event %q: want delivered, bounced, complained or dropped", d.Event)
		}
		if e.Recipient == "" || (e.MessageID == "" && e.ProviderID == "") {
			return nil, Malformed("an event needs recipient and message_id or provider_id")
		}
		out = append(out, e)
	}
	return out, nil
}
