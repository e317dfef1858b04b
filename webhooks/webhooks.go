// Package webhooks delivers each user's message events to the endpoints it
// registered, signed per the Standard Webhooks specification
// (https://www.standardwebhooks.com), so that an app learns what became of
// its mail without polling.
//
// What is on disk (buckets in the shared bbolt file):
//
//	webhook-endpoints: endpoint ID → JSON of the endpoint and its signing
//	                   secret, sealed under the relay's master key (sealed.go).
//	webhook-outbox:    endpoint ID + sequence (8 bytes) → JSON of a delivery
//	                   (webhook-id, body, attempts, next attempt): what is
//	                   still to be sent to that endpoint, in order.
//
// Events reach the outbox in the transaction that stores them (Bolt.Put is
// the events.Outbox), so an event is queued for every matching endpoint
// exactly when it is recorded. The Worker sends each endpoint's deliveries
// one at a time, oldest first: a failed head is retried (Backoff) before
// anything later goes, so an endpoint sees its events in order, each once
// it answered 2xx. A head still failing three days after its first attempt
// disables the endpoint and records a webhook_disabled event in the user's
// log; re-enabling it sends what was waiting.
//
// Endpoints are addresses a user chose, so they get the rule of a sender's
// own SMTP server: HTTPS, and a public address, checked when registered
// (by name) and at every connection (by the address dialed), unless the
// operator allows http or private addresses ([webhooks]).
package webhooks

import (
	"context"
	"errors"
	"time"

	"outbound/events"
)

// Endpoint is a URL a user registered for its events.
type Endpoint struct {
	// ID names the endpoint in the API ("ep_" and 16 hex digits) and in
	// its deliveries' webhook-id.
	ID string `json:"id"`
	// User is the login whose events go there.
	User string `json:"user"`
	// URL is where the events are POSTed.
	URL string `json:"url"`
	// Kinds are the event kinds sent; empty: every kind.
	Kinds []events.Kind `json:"kinds,omitempty"`
	// SecretHint is the secret's first characters, to tell secrets apart;
	// the whole secret is shown once, when the endpoint is created.
	SecretHint string `json:"secret_hint"`
	// Created is when it was registered.
	Created time.Time `json:"created"`
	// Disabled is when it was disabled after failing for too long (zero:
	// enabled); nothing is queued for it meanwhile.
	Disabled time.Time `json:"disabled,omitzero"`
	// DisabledReason is the last failure when it was disabled.
	DisabledReason string `json:"disabled_reason,omitempty"`
	// Pending is how many deliveries wait for it (filled in by List).
	Pending int `json:"pending"`
}

// Wants says whether events of kind k go to e.
func (e *Endpoint) Wants(k events.Kind) bool {
	if len(e.Kinds) == 0 {
		return true
	}
	for _, w := range e.Kinds {
		if w == k {
			return true
		}
	}
	return false
}

// ErrNotFound is an endpoint that does not exist (or is another user's).
var ErrNotFound = errors.New("no such webhook endpoint")

// Store keeps the endpoints. Bolt implements it in the shared bbolt file
// (it is also the events.Outbox, and the Worker reads its deliveries).
type Store interface {
	// Register checks rawURL (Policy.CheckURL) and kinds, and stores a new
	// endpoint with a fresh secret, returned here and never again.
	Register(ctx context.Context, user, rawURL string, kinds []events.Kind) (Endpoint, string, error)
	// List returns the user's endpoints, oldest first ("" every user's).
	List(user string) ([]Endpoint, error)
	// Get returns an endpoint.
	Get(id string) (Endpoint, error)
	// Delete removes an endpoint and what waits for it.
	Delete(id string) error
	// Enable re-enables a disabled endpoint; what waited for it is sent.
	Enable(id string) error
}
