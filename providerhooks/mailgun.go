package providerhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"outbound/events"
)

// Mailgun verifies Mailgun's webhooks (JSON, "signature" and
// "event-data"): the signature is the hex HMAC-SHA256 of timestamp+token
// under the domain's HTTP webhook signing key; a timestamp more than
// MaxAge off is refused, and so is a token seen before.
// https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
type Mailgun struct{ Guard Guard }

var _ Verifier = Mailgun{}

type mailgunPayload struct {
	Signature struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData *struct {
		ID        string  `json:"id"`
		Event     string  `json:"event"`
		Severity  string  `json:"severity"`
		Reason    string  `json:"reason"`
		Timestamp float64 `json:"timestamp"`
		Recipient string  `json:"recipient"`
		Message   struct {
			Headers struct {
				MessageID string `json:"message-id"`
			} `json:"headers"`
		} `json:"message"`
		DeliveryStatus struct {
			Code         json.Number `json:"code"`
			EnhancedCode string      `json:"enhanced-code"`
			Message      string      `json:"message"`
			Description  string      `json:"description"`
		} `json:"delivery-status"`
	} `json:"event-data"`
}

// Verify checks the signature, parses the one event of the request, and
// takes its token last. Events that are no delivery outcome (accepted,
// opened, clicked, unsubscribed, stored) are verified and give none.
func (m Mailgun) Verify(r *http.Request, body []byte, s Secrets) (Verified, error) {
	if s.MailgunSigningKey == "" {
		return Verified{}, Unauthorized("no Mailgun webhook signing key is set for this smarthost")
	}
	var p mailgunPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return Verified{}, Malformed("not Mailgun's JSON: %v", err)
	}
	sig := p.Signature
	if sig.Timestamp == "" || sig.Token == "" || sig.Signature == "" {
		return Verified{}, Unauthorized("no signature")
	}
	want := mailgunSign(s.MailgunSigningKey, sig.Timestamp, sig.Token)
	if !hmac.Equal([]byte(strings.ToLower(sig.Signature)), []byte(want)) {
		return Verified{}, Unauthorized("bad signature")
	}
	secs, err := strconv.ParseInt(sig.Timestamp, 10, 64)
	if err != nil {
		return Verified{}, Malformed("signature timestamp %q is not a number", sig.Timestamp)
	}
	evs, err := mailgunEvents(p)
	if err != nil {
		return Verified{}, err
	}
	claim, err := m.Guard.Check(time.Unix(secs, 0), "mailgun:"+sig.Token)
	if err != nil {
		return Verified{}, err
	}
	return Verified{Events: evs, Claim: claim}, nil
}

// mailgunEvents is the event of p's event-data: none for an event that is
// no delivery outcome.
func mailgunEvents(p mailgunPayload) ([]Event, error) {
	d := p.EventData
	if d == nil {
		return nil, Malformed("no event-data")
	}
	e := Event{
		MessageID: strings.Trim(strings.TrimSpace(d.Message.Headers.MessageID), "<>"),
		Recipient: d.Recipient,
		EventID:   d.ID,
	}
	if d.Timestamp > 0 {
		sec, frac := math.Modf(d.Timestamp)
		e.At = time.Unix(int64(sec), int64(frac*1e9))
	}
	switch d.Event {
	case "delivered":
		e.Kind = events.ProviderDelivered
		e.Reply = mailgunReply(d.DeliveryStatus.Code.String(), d.DeliveryStatus.EnhancedCode, d.DeliveryStatus.Message, d.DeliveryStatus.Description)
	case "failed":
		e.Kind = events.ProviderBounced
		e.Permanent = d.Severity == "permanent"
		e.Reply = mailgunReply(d.DeliveryStatus.Code.String(), d.DeliveryStatus.EnhancedCode, d.DeliveryStatus.Message, d.DeliveryStatus.Description)
		// Mailgun did not try: the address is on its own suppression
		// lists ("suppress-bounce", "suppress-complaint", ...).
		if strings.HasPrefix(d.Reason, "suppress-") {
			e.Kind = events.ProviderDropped
			if e.Reply == "" {
				e.Reply = "Mailgun did not send it: " + d.Reason
			}
		}
	case "complained":
		e.Kind = events.ProviderComplained
		e.Reply = "the recipient marked the message as spam"
	case "":
		return nil, Malformed("event-data has no event")
	default:
		return nil, nil
	}
	return []Event{e}, nil
}

// mailgunReply puts delivery-status together as an SMTP reply line, the
// form bounce.Classify reads: "550 5.1.1 The email account ...".
func mailgunReply(code, enhanced, message, description string) string {
	text := strings.TrimSpace(message)
	if text == "" {
		text = strings.TrimSpace(description)
	}
	if code == "0" {
		code = ""
	}
	if enhanced != "" && !strings.Contains(text, enhanced) {
		text = enhanced + " " + text
	}
	if code != "" && !strings.HasPrefix(text, code) {
		text = code + " " + text
	}
	return strings.Join(strings.Fields(text), " ")
}

// mailgunSign is the signature Mailgun puts on timestamp and token (hex).
func mailgunSign(key, timestamp, token string) string {
	mac := hmac.New(sha256.New, []byte(key))
	fmt.Fprint(mac, timestamp+token)
	return hex.EncodeToString(mac.Sum(nil))
}
