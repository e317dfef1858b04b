package providerhooks

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"outbound/events"
)

// Postmark verifies Postmark's webhooks (Bounce, SpamComplaint, Delivery).
//
// Postmark signs nothing: its only authentication is HTTP basic auth with
// credentials written into the webhook URL configured at Postmark
// (https://user:password@host/hooks/{smarthost}/postmark), which is why
// the listener takes them over HTTPS only, and why they are unique per
// smarthost (Secrets.PostmarkUser and PostmarkPassword; none configured:
// every request refused). There is no signed timestamp to refuse stale
// requests by; a request sent again is caught by its event's own id
// (Event.EventID: the bounce or complaint ID, or the message and recipient
// of a delivery), which the Handler records once.
type Postmark struct{}

var _ Verifier = Postmark{}

// Verify implements Verifier. It takes no replay token (there is none to
// take), so its Verified holds no Claim.
func (Postmark) Verify(r *http.Request, body []byte, s Secrets) (Verified, error) {
	if s.PostmarkUser == "" || s.PostmarkPassword == "" {
		return Verified{}, Unauthorized("no Postmark webhook credentials are configured for this smarthost")
	}
	user, pass, ok := r.BasicAuth()
	// Both compared, whatever the first gives.
	userOK, passOK := equalSecret(user, s.PostmarkUser), equalSecret(pass, s.PostmarkPassword)
	if !ok || !userOK || !passOK {
		return Verified{}, Unauthorized("wrong or missing basic-auth credentials")
	}
	e, err := parsePostmark(body)
	if err != nil {
		return Verified{}, Malformed("%s", err)
	}
	if e == nil {
		return Verified{}, nil
	}
	return Verified{Events: []Event{*e}}, nil
}

// equalSecret compares in constant time, also in length (both sides are
// hashed first), so timing tells nothing of the secret.
func equalSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// postmarkRecord is the part of a Postmark webhook read here: the Bounce
// and SpamComplaint payloads (https://postmarkapp.com/developer/webhooks/
// bounce-webhook, spam-complaint-webhook) and the Delivery one
// (delivery-webhook). ID is a json.Number: bounce ids pass 2^53.
type postmarkRecord struct {
	RecordType  string      `json:"RecordType"`
	ID          json.Number `json:"ID"`
	Type        string      `json:"Type"`
	MessageID   string      `json:"MessageID"`
	Description string      `json:"Description"`
	Details     string      `json:"Details"`
	Email       string      `json:"Email"`
	BouncedAt   string      `json:"BouncedAt"`
	Recipient   string      `json:"Recipient"`
	DeliveredAt string      `json:"DeliveredAt"`
}

// postmarkBounce says what each of Postmark's bounce types
// (https://postmarkapp.com/developer/api/bounce-api#bounce-types) means
// for the recipient: a bounce (permanent or not), a drop, or nothing to
// record (ok false: auto-replies, subscription requests, inbound errors).
func postmarkBounce(typ string) (kind events.Kind, permanent, ok bool) {
	switch typ {
	case "HardBounce", "BadEmailAddress", "DMARCPolicy":
		return events.ProviderBounced, true, true
	case "Transient", "SoftBounce", "DnsError", "Blocked", "SpamNotification", "VirusNotification", "Unknown":
		return events.ProviderBounced, false, true
	case "ManuallyDeactivated":
		// Postmark will not send to it any more.
		return events.ProviderDropped, true, true
	}
	return "", false, false
}

// parsePostmark returns the event of one Postmark webhook, or nil for a
// record that says nothing about a recipient's fate (Open, Click,
// SubscriptionChange, an auto-reply bounce...).
func parsePostmark(body []byte) (*Event, error) {
	var p postmarkRecord
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("the Postmark webhook is not JSON: %w", err)
	}
	if p.RecordType == "" {
		return nil, fmt.Errorf("the Postmark webhook has no RecordType")
	}
	switch p.RecordType {
	case "Bounce", "SpamComplaint":
		if p.ID == "" || p.MessageID == "" || p.Email == "" {
			return nil, fmt.Errorf("the Postmark %s lacks ID, MessageID or Email", p.RecordType)
		}
		e := &Event{ProviderID: p.MessageID, Recipient: p.Email, At: postmarkTime(p.BouncedAt),
			Reply: postmarkReply(p.Details, p.Description), EventID: "postmark:" + p.ID.String()}
		if p.RecordType == "SpamComplaint" || p.Type == "SpamComplaint" {
			e.Kind = events.ProviderComplained
			return e, nil
		}
		kind, permanent, ok := postmarkBounce(p.Type)
		if !ok {
			return nil, nil
		}
		e.Kind, e.Permanent = kind, permanent
		return e, nil
	case "Delivery":
		if p.MessageID == "" || p.Recipient == "" {
			return nil, fmt.Errorf("the Postmark Delivery lacks MessageID or Recipient")
		}
		// A delivery has no id of its own; a message is delivered to a
		// recipient once.
		return &Event{Kind: events.ProviderDelivered, ProviderID: p.MessageID, Recipient: p.Recipient,
			At: postmarkTime(p.DeliveredAt), Reply: postmarkReply(p.Details, ""),
			EventID: "postmark:delivery:" + p.MessageID + "/" + p.Recipient}, nil
	}
	return nil, nil
}

// postmarkReply is the remote server's reply from Details ("smtp;550 5.1.1
// ..."), without its "smtp;" type, else Postmark's description.
func postmarkReply(details, description string) string {
	d := strings.TrimSpace(details)
	if rest, ok := strings.CutPrefix(strings.ToLower(d), "smtp;"); ok {
		d = strings.TrimSpace(d[len(d)-len(rest):])
	}
	if d == "" {
		return strings.TrimSpace(description)
	}
	return d
}

// postmarkTime parses Postmark's ISO 8601 times (with up to 7 fraction
// digits, with Z or an offset); zero when absent or odd.
func postmarkTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
