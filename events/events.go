// Package events is the delivery tracking log: what happened to each
// message and recipient, from submission to its final fate, kept as long
// as the message's stub (package queue's retention deletes both together).
//
// What is on disk (buckets in the shared bbolt file):
//
//	events:            key → JSON of Event. The key is the event's time
//	                   (8 bytes, big-endian Unix nanoseconds) and a
//	                   sequence number (8 bytes), so keys sort by time and
//	                   "since" and "after this cursor" are range scans.
//	events-by-message: queue ID + "/" + key → nothing: a message's events,
//	                   for its page and for deleting them with its stub.
//
// An event that comes from a queue change (received, deferred, relayed,
// failed, DSN queued, redacted) is written by Bolt.Put in the transaction
// that stores that change, so no event is recorded for an outcome that was
// not stored, nor lost for one that was.
package events

import (
	"time"
)

// Kind is what happened.
type Kind string

// The kinds of event. The provider-reported ones come from the providers'
// webhooks, after the upstream said 250.
const (
	// Received: the relay accepted the message for this recipient (250).
	Received Kind = "received"
	// Deferred: an attempt failed temporarily; Reply says why, Attempt
	// which one.
	Deferred Kind = "deferred"
	// Relayed: the upstream accepted the recipient; ProviderID is its
	// message id when its reply gave one.
	Relayed Kind = "relayed"
	// Failed: delivery failed permanently (a refusal, or the lifetime
	// ran out, or the operator bounced it).
	Failed Kind = "failed"
	// DSNQueued: a delivery status notification to the sender was queued;
	// Detail names its queue ID and what it reports.
	DSNQueued Kind = "dsn_queued"
	// Redacted: the retention sweep removed the message's content.
	Redacted Kind = "redacted"
	// ProviderDelivered: the provider reports the recipient's server took it.
	ProviderDelivered Kind = "provider_delivered"
	// ProviderBounced: the provider reports a bounce (Detail says permanent
	// or temporary, Reply the remote server's reply).
	ProviderBounced Kind = "provider_bounced"
	// ProviderComplained: the recipient marked the message as spam.
	ProviderComplained Kind = "provider_complained"
	// ProviderDropped: the provider did not even try (its own suppression).
	ProviderDropped Kind = "provider_dropped"
	// WebhookDisabled: one of the user's webhook endpoints kept failing
	// and was disabled (package webhooks); Detail names it and why. It
	// concerns no message.
	WebhookDisabled Kind = "webhook_disabled"
)

// Kinds lists every Kind, for metrics and validation.
func Kinds() []Kind {
	return []Kind{Received, Deferred, Relayed, Failed, DSNQueued, Redacted,
		ProviderDelivered, ProviderBounced, ProviderComplained, ProviderDropped, WebhookDisabled}
}

// Event is one entry of a message's timeline.
type Event struct {
	// ID is the event's key in the store, set when it is stored; it is
	// also the cursor that continues a listing after this event.
	ID string `json:"id,omitempty"`
	// At is when it happened.
	At time.Time `json:"at"`
	// Kind is what happened.
	Kind Kind `json:"kind"`
	// Message is the queue ID of the message.
	Message string `json:"message"`
	// Node is the relay node whose queue holds the message, when several
	// nodes share the event log (package ship sets it as it ships).
	Node string `json:"node,omitempty"`
	// User is the login that submitted the message ("" for the relay's
	// own mail); listings filter on it.
	User string `json:"user,omitempty"`
	// Recipient is the recipient concerned; empty for events about the
	// whole message (redacted).
	Recipient string `json:"recipient,omitempty"`
	// Upstream is the smarthost of a delivery attempt.
	Upstream string `json:"upstream,omitempty"`
	// Reply is the upstream's (or provider's) reply or error.
	Reply string `json:"reply,omitempty"`
	// ProviderID is the provider's own id for the message, from its 250
	// reply (ParseProviderID) or its webhook: webhooks are matched by it.
	ProviderID string `json:"provider_id,omitempty"`
	// MessageID is the message's header Message-ID without angle
	// brackets, on relayed events: providers' webhooks name messages by
	// it (Match).
	MessageID string `json:"message_id,omitempty"`
	// Attempt is the recipient's attempt count at a delivery event.
	Attempt int `json:"attempt,omitempty"`
	// Detail is anything else worth saying (the DSN's queue ID, a bounce's
	// class).
	Detail string `json:"detail,omitempty"`
	// Tags and Metadata are the message's own (queue.Message), copied
	// into each of its events, so a listing filtered by them and a
	// webhook's payload name the sender's labels with no lookup: by
	// their writers where the event is made from the message (received,
	// deferred, relayed, failed, dsn_queued), by Put from the message's
	// earlier events for the others (provider_*, redacted). An event
	// recorded after its message's stub was deleted has none.
	Tags     []string          `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Query selects events for a listing.
type Query struct {
	// User keeps only this user's events ("" keeps all).
	User string
	// Since keeps events at or after this time (zero: from the start).
	Since time.Time
	// Cursor continues after the event with this ID (Event.ID, Page.Next).
	Cursor string
	// Limit is the most events returned (0 or over MaxLimit: MaxLimit).
	Limit int
}

// MaxLimit bounds a page, so a listing is a short read.
const MaxLimit = 500

// Page is one page of a listing.
type Page struct {
	Events []Event `json:"events"`
	// Next is the cursor for the following page; empty at the end.
	Next string `json:"next,omitempty"`
}

// Store keeps the events. Bolt implements it in the shared bbolt file; a
// database server could implement it too (it would then also need its
// own way to write events with the queue's changes).
type Store interface {
	// Record stores events that come from no queue change (a provider's
	// report, an operator's action). An event of a message given without
	// tags and metadata gets the message's, as its earlier events have
	// them, unless it is of a kind made from the message (received,
	// deferred, relayed, failed, dsn_queued), whose writers copy them.
	Record(evs ...Event) error
	// ForMessage returns a message's events, oldest first.
	ForMessage(id string) ([]Event, error)
	// List returns a page of events, oldest first.
	List(q Query) (Page, error)
	// DeleteMessage removes a message's events.
	DeleteMessage(id string) error
}
