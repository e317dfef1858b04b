// Package providerhooks receives providers' event callbacks (Mailgun,
// SendGrid, Postmark, Amazon SES through SNS, and a generic signed form),
// verifies each by its provider's own scheme, and records them: the event
// goes on the message's timeline, the provider's bounce reply is
// classified, and an address that will not work (or that complained) is
// suppressed.
//
// No event is trusted before its provider's check. A Verifier is the check
// and the parser of one provider's format; the Handler picks the Verifier
// by path, the secrets by the smarthost named in the path, and turns the
// Verifier's typed errors into HTTP answers (see Error).
package providerhooks

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"outbound/events"
)

// Event is one provider-reported outcome, as a Verifier parsed it.
type Event struct {
	// Kind is one of the provider kinds: events.ProviderDelivered,
	// ProviderBounced, ProviderComplained, ProviderDropped.
	Kind events.Kind
	// MessageID is the message's RFC 5322 Message-ID without its angle
	// brackets, when the provider reports it: the relay puts one on every
	// message, so it is the first way to find ours.
	MessageID string
	// ProviderID is the provider's own id for the message (the one in its
	// 250 reply), the second way to find ours.
	ProviderID string
	// Recipient is the recipient address the event is about.
	Recipient string
	// Reply is the remote server's reply (or the provider's description)
	// for bounces and drops; it is classified with bounce.Classify.
	Reply string
	// Permanent is true for a permanent bounce, false for a temporary
	// one (deferrals are temporary bounces).
	Permanent bool
	// At is when the provider says it happened (zero: when received).
	At time.Time
	// EventID is the provider's own id of this event; an event whose id
	// was already recorded is skipped (providers retry, and Postmark signs
	// nothing, so this is its only replay defence besides HTTPS).
	EventID string
}

// Secrets is what a smarthost stores for its provider's webhooks, sealed
// like its password. A Verifier reads the fields of its provider; an empty
// one means that provider's webhooks are not set up for the smarthost, and
// the Verifier refuses every request (Unauthorized).
type Secrets struct {
	// MailgunSigningKey is Mailgun's "HTTP webhook signing key".
	MailgunSigningKey string `json:"mailgun_signing_key,omitempty"`
	// SendGridPublicKey is the signed event webhook's verification key,
	// base64 of the DER (PKIX) ECDSA P-256 public key, as SendGrid shows it.
	SendGridPublicKey string `json:"sendgrid_public_key,omitempty"`
	// PostmarkUser and PostmarkPassword are the basic-auth credentials put
	// in the webhook URL configured at Postmark; unique per smarthost.
	PostmarkUser     string `json:"postmark_user,omitempty"`
	PostmarkPassword string `json:"postmark_password,omitempty"`
	// SNSTopicARN is the SNS topic the SES notifications come from: a
	// correctly signed message from any other topic is refused (anybody
	// can have Amazon sign messages of their own topics).
	SNSTopicARN string `json:"sns_topic_arn,omitempty"`
	// GenericSecret is the HMAC-SHA256 key of the generic webhook.
	GenericSecret string `json:"generic_secret,omitempty"`
}

// IsZero reports whether no secret is set.
func (s Secrets) IsZero() bool { return s == Secrets{} }

// Verifier checks one provider's callback and parses its events. body is
// the whole request body (already read, size-limited). It records nothing
// but the request's replay token (Guard.Check), and that as its last check,
// so that a request refused for any other reason holds no token: the
// Handler records the events it returns, and nothing when it returns an
// error. Errors should be *Error (made by Unauthorized, Malformed,
// Replayed); any other error is answered 500, and the Verifier has released
// its claim by then.
type Verifier interface {
	Verify(r *http.Request, body []byte, s Secrets) (Verified, error)
}

// Verified is what a Verifier accepted.
type Verified struct {
	// Events are the request's delivery outcomes; none for a request
	// that reports none (opens, clicks, an SNS subscription).
	Events []Event
	// Claim is the replay token the Verifier took for the request (zero
	// when its provider signs nothing to replay). The Handler releases it
	// when storing Events fails and the request is answered 500: the
	// provider retries a 500 with the very same request, and refusing that
	// retry as a replay (409, which no provider retries) would lose the
	// events. Returning it is the Verifier's whole part in this.
	Claim Claim
}

// Error is a refusal with the HTTP status the Handler answers. Reason goes
// to the log and the response body; it never contains a secret.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Reason) }

// Unauthorized: a bad or missing signature or credentials, a stale
// timestamp, or no secret configured. Answered 401.
func Unauthorized(format string, a ...any) error {
	return &Error{Status: http.StatusUnauthorized, Reason: fmt.Sprintf(format, a...)}
}

// Malformed: the request is not in the provider's format. Answered 400.
func Malformed(format string, a ...any) error {
	return &Error{Status: http.StatusBadRequest, Reason: fmt.Sprintf(format, a...)}
}

// Replayed: a correctly signed request whose token (Mailgun token, SNS
// message id, SendGrid's signed timestamp and body, generic signature) was
// already taken within MaxAge. Answered 409 Conflict and nothing is
// recorded: the first copy was recorded already, as a token stays taken
// only by a request answered 2xx (the Handler releases it after a 500), so
// the request can only come again by replay or by a provider retry of one
// we answered (whose events we have).
func Replayed(format string, a ...any) error {
	return &Error{Status: http.StatusConflict, Reason: fmt.Sprintf(format, a...)}
}

// StatusOf returns the HTTP status for a Verifier's error.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

// MaxAge is how old a signed timestamp may be (Mailgun, SendGrid, SNS,
// generic), and how far in the future: 5 minutes, as Mailgun's and
// SendGrid's documentation suggest. Replay guards remember tokens this
// long, so a replay is refused either as stale or as seen.
const MaxAge = 5 * time.Minute

// CheckFresh refuses a signed timestamp more than MaxAge away from now.
func CheckFresh(now, signed time.Time) error {
	if d := now.Sub(signed); d > MaxAge || d < -MaxAge {
		return Unauthorized("timestamp %s is more than %s from now", signed.UTC().Format(time.RFC3339), MaxAge)
	}
	return nil
}

// Guard is what the Verifiers of signed requests share: the clock and the
// replay memory. Check a request last: after its signature is verified (so
// forged tokens never fill the memory) and its body parsed (so a malformed
// request holds no token, and only storing can fail after the claim).
type Guard struct {
	// Now is the clock (time.Now in production).
	Now func() time.Time
	// Replay remembers the tokens of accepted requests for MaxAge.
	Replay *Replay
}

// NewGuard is a Guard on the clock now (nil: time.Now) remembering up to
// max tokens (0: 100000, about 330 requests a second for 5 minutes).
func NewGuard(now func() time.Time, max int) Guard {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = 100000
	}
	return Guard{Now: now, Replay: NewReplay(MaxAge, max)}
}

// Check refuses a request signed at signedAt that is stale (Unauthorized)
// or whose token was taken before (Replayed), and takes the token
// otherwise: the Verifier returns the Claim in Verified, for the Handler to
// release should storing the events fail. token should name the provider
// too ("mailgun:" + token), as one memory serves all of them.
func (g Guard) Check(signedAt time.Time, token string) (Claim, error) {
	now := g.Now()
	if err := CheckFresh(now, signedAt); err != nil {
		return Claim{}, err
	}
	if g.Replay.Seen(token, now) {
		return Claim{}, Replayed("already received")
	}
	return g.Replay.claim(token, now), nil
}
