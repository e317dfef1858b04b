package providerhooks

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"outbound/events"
)

// SendGrid verifies SendGrid's signed event webhook: the
// X-Twilio-Email-Event-Webhook-Signature header is the base64 of an
// ASN.1 DER ECDSA signature, with the P-256 public key SendGrid shows
// (base64 DER), over SHA-256 of the X-Twilio-Email-Event-Webhook-Timestamp
// header followed by the body. A timestamp more than MaxAge off is
// refused, and so is a signature seen before.
// https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
type SendGrid struct{ Guard Guard }

var _ Verifier = SendGrid{}

// The signed event webhook's headers.
const (
	SendGridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	SendGridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

type sendGridEvent struct {
	Email       string `json:"email"`
	Timestamp   int64  `json:"timestamp"`
	SMTPID      string `json:"smtp-id"`
	Event       string `json:"event"`
	SGEventID   string `json:"sg_event_id"`
	SGMessageID string `json:"sg_message_id"`
	Reason      string `json:"reason"`
	Status      string `json:"status"`
	Response    string `json:"response"`
	Type        string `json:"type"`
}

// Verify checks the signature, parses the batch of events, and takes the
// request's token last. Events that are no delivery outcome (processed,
// open, click, unsubscribe, ...) give none.
func (sg SendGrid) Verify(r *http.Request, body []byte, s Secrets) (Verified, error) {
	if s.SendGridPublicKey == "" {
		return Verified{}, Unauthorized("no SendGrid verification key is set for this smarthost")
	}
	pub, err := sendGridKey(s.SendGridPublicKey)
	if err != nil {
		return Verified{}, Unauthorized("the smarthost's %v", err)
	}
	ts := r.Header.Get(SendGridTimestampHeader)
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(SendGridSignatureHeader))
	if ts == "" || err != nil || len(sig) == 0 {
		return Verified{}, Unauthorized("no signature")
	}
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(body)
	if !ecdsa.VerifyASN1(pub, h.Sum(nil), sig) {
		return Verified{}, Unauthorized("bad signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Verified{}, Malformed("timestamp %q is not a number", ts)
	}
	evs, err := sendGridEvents(body)
	if err != nil {
		return Verified{}, err
	}
	// ECDSA signatures are not unique (anyone may re-randomize one), so
	// the token is what was signed, not the signature.
	sum := sha256.Sum256(append([]byte(ts+"\n"), body...))
	claim, err := sg.Guard.Check(time.Unix(secs, 0), "sendgrid:"+base64.RawStdEncoding.EncodeToString(sum[:]))
	if err != nil {
		return Verified{}, err
	}
	return Verified{Events: evs, Claim: claim}, nil
}

// sendGridEvents parses SendGrid's batch of events, keeping the delivery
// outcomes.
func sendGridEvents(body []byte) ([]Event, error) {
	var batch []sendGridEvent
	if err := json.Unmarshal(body, &batch); err != nil {
		return nil, Malformed("not SendGrid's JSON array of events: %v", err)
	}
	var out []Event
	for _, d := range batch {
		e := Event{
			MessageID:  strings.Trim(strings.TrimSpace(d.SMTPID), "<>"),
			ProviderID: sendGridQueueID(d.SGMessageID),
			Recipient:  d.Email,
			EventID:    d.SGEventID,
		}
		if d.Timestamp > 0 {
			e.At = time.Unix(d.Timestamp, 0)
		}
		switch d.Event {
		case "delivered":
			e.Kind, e.Reply = events.ProviderDelivered, d.Response
		case "bounce":
			// type "blocked" is a refusal of the message, not of the
			// address; SendGrid does not retry either.
			e.Kind, e.Permanent = events.ProviderBounced, true
			e.Reply = sendGridReply(d.Status, d.Reason)
		case "deferred":
			e.Kind, e.Reply = events.ProviderBounced, d.Response
		case "dropped":
			e.Kind, e.Reply = events.ProviderDropped, "SendGrid did not send it: "+d.Reason
		case "spamreport":
			e.Kind, e.Reply = events.ProviderComplained, "the recipient marked the message as spam"
		case "":
			return nil, Malformed("an event without its type")
		default:
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// sendGridQueueID is the id of SendGrid's 250 reply ("queued as ID") in
// its sg_message_id, which goes on with ".filter..." or ".recvd-...".
func sendGridQueueID(sgMessageID string) string {
	for _, sep := range []string{".filter", ".recvd"} {
		if i := strings.Index(sgMessageID, sep); i > 0 {
			return sgMessageID[:i]
		}
	}
	return sgMessageID
}

// sendGridReply joins a bounce's status and reason into the form
// bounce.Classify reads.
func sendGridReply(status, reason string) string {
	reason = strings.TrimSpace(reason)
	if status == "" || strings.Contains(reason, status) {
		return reason
	}
	// "550 unknown recipient" with status 5.1.1: 550 5.1.1 unknown ...
	if len(reason) > 4 && reason[3] == ' ' && strings.Trim(reason[:3], "0123456789") == "" {
		return reason[:3] + " " + status + " " + reason[4:]
	}
	return status + " " + reason
}

// sendGridKey reads the verification key as SendGrid shows it: base64 of
// the DER (PKIX) ECDSA public key.
func sendGridKey(b64 string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, errors.New("SendGrid verification key is not base64")
	}
	key, err := x509.ParsePKIXPublicKey(der)
	pub, ok := key.(*ecdsa.PublicKey)
	if err != nil || !ok {
		return nil, errors.New("SendGrid verification key is not an ECDSA public key (base64 DER)")
	}
	return pub, nil
}
