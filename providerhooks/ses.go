package providerhooks

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"outbound/events"
)

// SNSMaxAge is how old an SNS message's Timestamp may be. SNS keeps the
// Timestamp (and the signature) of a message when it retries it, and an
// HTTPS subscription's delivery policy may retry for up to an hour, so the
// 5 minutes of MaxAge would refuse legitimate retries. The SES verifier
// remembers message ids for as long, so a replay is refused either as stale
// or as seen. A Timestamp more than MaxAge in the future is refused too.
const SNSMaxAge = time.Hour

// SES verifies Amazon SES notifications (bounces, complaints, deliveries;
// both the identity notifications and configuration-set event publishing)
// that an SNS topic POSTs to its HTTPS subscription, with raw message
// delivery off (the SNS envelope carries the signature).
//
// Every request is checked in this order, and nothing is fetched before
// the cheap checks pass: the JSON is an SNS message; its TopicArn is the
// smarthost's Secrets.SNSTopicARN (none configured: refused, as anyone
// can have Amazon sign messages of a topic of their own); its Timestamp
// is within SNSMaxAge; its SigningCertURL is https on an SNS host; then the
// certificate is fetched (once per URL, then cached) and the signature
// verified; then the message id must be new.
//
// A SubscriptionConfirmation that passes all that is confirmed at once by
// a GET of its SubscribeURL (which must be on an SNS host too): the topic
// is the one the operator configured, so subscribing is what the operator
// asked for, and there is nothing else to do by hand. An
// UnsubscribeConfirmation is accepted and ignored (never resubscribed).
type SES struct {
	now    func() time.Time
	replay *Replay
	fetch  Fetcher
	certs  *snsCerts
	log    *slog.Logger
}

var _ Verifier = (*SES)(nil)

// NewSES returns the SES verifier. now is the clock (nil: time.Now); fetch
// gets certificates and confirms subscriptions (nil: NewSNSFetcher(0));
// log notes confirmed subscriptions (nil: slog.Default()).
func NewSES(now func() time.Time, fetch Fetcher, log *slog.Logger) *SES {
	if now == nil {
		now = time.Now
	}
	if fetch == nil {
		fetch = NewSNSFetcher(0)
	}
	if log == nil {
		log = slog.Default()
	}
	return &SES{now: now, replay: NewReplay(SNSMaxAge, 100000), fetch: fetch, certs: newSNSCerts(fetch), log: log}
}

// Verify implements Verifier.
func (v *SES) Verify(r *http.Request, body []byte, s Secrets) (Verified, error) {
	m, err := parseSNS(body)
	if err != nil {
		return Verified{}, Malformed("%s", err)
	}
	if s.SNSTopicARN == "" {
		return Verified{}, Unauthorized("no SNS topic ARN is configured for this smarthost's SES webhooks")
	}
	if m.TopicArn != s.SNSTopicARN {
		return Verified{}, Unauthorized("the SNS message is from topic %s, not the configured one", m.TopicArn)
	}
	signed, err := time.Parse(time.RFC3339, m.Timestamp)
	if err != nil {
		return Verified{}, Malformed("the SNS Timestamp %q is not RFC 3339", m.Timestamp)
	}
	now := v.now()
	if age := now.Sub(signed); age > SNSMaxAge || age < -MaxAge {
		return Verified{}, Unauthorized("the SNS Timestamp %s is stale (more than %s old) or in the future", m.Timestamp, SNSMaxAge)
	}
	if _, err := CheckSNSURL(m.SigningCertURL); err != nil {
		return Verified{}, Unauthorized("%s", err)
	}
	cert, err := v.certs.get(r.Context(), m.SigningCertURL, now)
	if err != nil {
		// A failed fetch is answered 500 (SNS retries), an expired
		// certificate 401.
		return Verified{}, err
	}
	if err := m.verifySignature(cert); err != nil {
		return Verified{}, Unauthorized("%s", err)
	}

	switch m.Type {
	case snsSubscriptionConfirmation:
		return v.confirm(r, m, now)
	case snsUnsubscribeConfirmation:
		claim, err := v.take(m, now)
		if err != nil {
			return Verified{}, err
		}
		v.log.Info("SES webhooks: SNS subscription ended; not resubscribing", "topic", m.TopicArn)
		return Verified{Claim: claim}, nil
	}
	evs, err := parseSESNotification(m.MessageID, []byte(m.Message))
	if err != nil {
		return Verified{}, Malformed("%s", err)
	}
	claim, err := v.take(m, now)
	if err != nil {
		return Verified{}, err
	}
	return Verified{Events: evs, Claim: claim}, nil
}

// take takes m's message id, the last check of every SNS message: SNS
// retries a message with the same id, so a Claim of it is what the Handler
// releases after a failure to store its events.
func (v *SES) take(m *snsMessage, now time.Time) (Claim, error) {
	token := "sns:" + m.MessageID
	if v.replay.Seen(token, now) {
		return Claim{}, Replayed("SNS message %s already received", m.MessageID)
	}
	return v.replay.claim(token, now), nil
}

// confirm confirms a verified SubscriptionConfirmation by a GET of its
// SubscribeURL.
func (v *SES) confirm(r *http.Request, m *snsMessage, now time.Time) (Verified, error) {
	if _, err := CheckSNSURL(m.SubscribeURL); err != nil {
		return Verified{}, Unauthorized("SubscribeURL: %s", err)
	}
	claim, err := v.take(m, now)
	if err != nil {
		return Verified{}, err
	}
	if _, err := v.fetch.Get(r.Context(), m.SubscribeURL); err != nil {
		// Answered 500: let SNS's retry of this confirmation through.
		claim.Release()
		return Verified{}, fmt.Errorf("confirming the SNS subscription to %s: %w", m.TopicArn, err)
	}
	v.log.Info("SES webhooks: SNS subscription confirmed", "topic", m.TopicArn)
	return Verified{Claim: claim}, nil
}

// sesNotification is the JSON in an SNS notification's Message, in the
// form of "Amazon SNS notification contents for Amazon SES"
// (docs.aws.amazon.com/ses/latest/dg/notification-contents.html) and of
// event publishing (event-publishing-retrieving-sns-contents.html): the
// same objects, with eventType instead of notificationType. Fields not
// read here are left out; SES may add more.
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Mail             struct {
		// MessageID is SES's id, the one in its 250 reply.
		MessageID string `json:"messageId"`
		Headers   []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
	Bounce *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
		Timestamp  string `json:"timestamp"`
		FeedbackID string `json:"feedbackId"`
	} `json:"bounce"`
	Complaint *struct {
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		Timestamp             string `json:"timestamp"`
		FeedbackID            string `json:"feedbackId"`
	} `json:"complaint"`
	Delivery *struct {
		Recipients   []string `json:"recipients"`
		SMTPResponse string   `json:"smtpResponse"`
		Timestamp    string   `json:"timestamp"`
	} `json:"delivery"`
	DeliveryDelay *struct {
		DelayType         string `json:"delayType"`
		DelayedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"delayedRecipients"`
		Timestamp string `json:"timestamp"`
	} `json:"deliveryDelay"`
}

// parseSESNotification turns one SES notification into an event per
// recipient. snsID names the events when SES gives no feedback id.
// Notification types that say nothing about a recipient's fate (Send,
// Open, Click, Rendering Failure, Subscription, Reject of the whole
// message before any recipient) give no events.
func parseSESNotification(snsID string, msg []byte) ([]Event, error) {
	var n sesNotification
	if err := json.Unmarshal(msg, &n); err != nil {
		return nil, fmt.Errorf("the SES notification is not JSON: %w", err)
	}
	typ := n.NotificationType
	if typ == "" {
		typ = n.EventType
	}
	if typ == "" || n.Mail.MessageID == "" {
		return nil, fmt.Errorf("the SES notification has no notificationType/eventType or no mail.messageId")
	}
	base := Event{MessageID: sesMessageID(&n), ProviderID: n.Mail.MessageID}
	eventID := func(feedback, rcpt string) string {
		if feedback != "" {
			return "ses:" + feedback + "/" + rcpt
		}
		return "sns:" + snsID + "/" + rcpt
	}
	var evs []Event
	switch typ {
	case "Bounce":
		b := n.Bounce
		if b == nil || len(b.BouncedRecipients) == 0 {
			return nil, fmt.Errorf("the SES bounce has no bouncedRecipients")
		}
		kind, permanent := events.ProviderBounced, b.BounceType == "Permanent"
		// SES did not try: the address is on its suppression list.
		if b.BounceSubType == "Suppressed" || b.BounceSubType == "OnAccountSuppressionList" {
			kind = events.ProviderDropped
		}
		for _, r := range b.BouncedRecipients {
			e := base
			e.Kind, e.Permanent, e.Recipient = kind, permanent, r.EmailAddress
			e.Reply = sesReply(r.DiagnosticCode, r.Status, b.BounceType+"/"+b.BounceSubType)
			e.At, e.EventID = sesTime(b.Timestamp), eventID(b.FeedbackID, r.EmailAddress)
			evs = append(evs, e)
		}
	case "Complaint":
		c := n.Complaint
		if c == nil || len(c.ComplainedRecipients) == 0 {
			return nil, fmt.Errorf("the SES complaint has no complainedRecipients")
		}
		for _, r := range c.ComplainedRecipients {
			e := base
			e.Kind, e.Recipient, e.Reply = events.ProviderComplained, r.EmailAddress, c.ComplaintFeedbackType
			e.At, e.EventID = sesTime(c.Timestamp), eventID(c.FeedbackID, r.EmailAddress)
			evs = append(evs, e)
		}
	case "Delivery":
		d := n.Delivery
		if d == nil || len(d.Recipients) == 0 {
			return nil, fmt.Errorf("the SES delivery has no recipients")
		}
		for _, rcpt := range d.Recipients {
			e := base
			e.Kind, e.Recipient, e.Reply = events.ProviderDelivered, rcpt, d.SMTPResponse
			e.At, e.EventID = sesTime(d.Timestamp), eventID("", rcpt)
			evs = append(evs, e)
		}
	case "DeliveryDelay":
		d := n.DeliveryDelay
		if d == nil || len(d.DelayedRecipients) == 0 {
			return nil, fmt.Errorf("the SES delivery delay has no delayedRecipients")
		}
		for _, r := range d.DelayedRecipients {
			e := base
			e.Kind, e.Recipient = events.ProviderBounced, r.EmailAddress
			e.Reply = sesReply(r.DiagnosticCode, r.Status, "DeliveryDelay/"+d.DelayType)
			e.At, e.EventID = sesTime(d.Timestamp), eventID("", r.EmailAddress)
			evs = append(evs, e)
		}
	}
	return evs, nil
}

// sesMessageID is the message's own Message-ID without angle brackets:
// SES replaces the header when sending, and reports the original in
// commonHeaders (or headers, when notifications include them).
func sesMessageID(n *sesNotification) string {
	id := n.Mail.CommonHeaders.MessageID
	if id == "" {
		for _, h := range n.Mail.Headers {
			if strings.EqualFold(h.Name, "Message-ID") {
				id = h.Value
				break
			}
		}
	}
	return strings.Trim(strings.TrimSpace(id), "<>")
}

// sesReply is the remote server's reply when SES has it (diagnosticCode,
// e.g. "smtp; 550 5.1.1 user unknown", without its "smtp; " type), else
// the status and SES's classification.
func sesReply(diagnostic, status, class string) string {
	if d := strings.TrimSpace(diagnostic); d != "" {
		if i := strings.Index(d, ";"); i >= 0 && i < 10 {
			d = strings.TrimSpace(d[i+1:])
		}
		return d
	}
	return strings.TrimSpace(status + " (" + class + ")")
}

// sesTime parses SES's timestamps; zero (meaning "when received") when
// absent or odd.
func sesTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
