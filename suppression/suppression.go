// Package suppression keeps the addresses mail is no longer sent to: a
// recipient whose server said it does not exist (unknown user or domain)
// or who complained is suppressed, and the relay refuses RCPT to it with
// the date and the reason, so that apps stop mailing dead addresses before
// their provider suspends them.
//
// What is on disk (a bucket in the shared bbolt file):
//
//	suppressions: scope + "\x00" + lower-case address → JSON of Entry.
//	              The scope is the sending user's login under scope
//	              "user", empty under scope "relay" (one list for all).
//
// A suppression that comes from a delivery failure is written by Bolt.Put
// in the transaction that stores the failure.
package suppression

import (
	"fmt"
	"strings"
	"time"

	"outbound/bounce"
)

// Kind is why an address is suppressed.
type Kind string

const (
	// Bounce: a permanent failure saying the address will not work.
	Bounce Kind = "bounce"
	// Complaint: the recipient marked a message as spam. Never expires.
	Complaint Kind = "complaint"
	// Manual: added by the operator or the sender.
	Manual Kind = "manual"
)

// Scope says whose list a suppression goes on.
type Scope string

const (
	// PerUser: each sending user has its own list (the default).
	PerUser Scope = "user"
	// RelayWide: one list for every user of the relay.
	RelayWide Scope = "relay"
)

// ParseScope reads the [suppression] scope setting.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case "", PerUser:
		return PerUser, nil
	case RelayWide:
		return RelayWide, nil
	}
	return "", fmt.Errorf(`suppression scope %q: want "user" or "relay"`, s)
}

// Entry is one suppressed address.
type Entry struct {
	// User is the user whose message caused it (or who added it); the
	// list it is on under scope "user". A sender may see and lift its own.
	User string `json:"user,omitempty"`
	// Addr is the suppressed recipient address.
	Addr string `json:"addr"`
	// Kind is why.
	Kind Kind `json:"kind"`
	// Reason is the upstream's reply (or the complaint, or the note of
	// who added it), quoted in the relay's refusal.
	Reason string `json:"reason"`
	// Message is the queue ID of the message that caused it, if any.
	Message string `json:"message,omitempty"`
	// Created is when it was suppressed.
	Created time.Time `json:"created"`
	// Expires is when the suppression lapses; zero for never (complaints).
	Expires time.Time `json:"expires,omitzero"`
}

// Active reports whether e still suppresses its address at now.
func (e *Entry) Active(now time.Time) bool {
	return e.Expires.IsZero() || now.Before(e.Expires)
}

// Store keeps the suppression list. Bolt implements it in the shared bbolt
// file.
type Store interface {
	// Lookup returns the active suppression of addr for mail from user,
	// or nil.
	Lookup(user, addr string) (*Entry, error)
	// Add suppresses e.Addr (Created and Expires filled in when zero).
	Add(e Entry) error
	// Delete lifts the suppression of addr on user's list (the relay's
	// one under scope "relay"); false when there was none.
	Delete(user, addr string) (bool, error)
	// List returns the entries of user's messages ("" for all), active
	// ones only, by address.
	List(user string) ([]Entry, error)
	// Complained suppresses addr for good after a complaint about a
	// message of user's: the webhooks' way in.
	Complained(user, addr, reason, message string) error
}

// normalize is the form addresses are compared in: the domain is not
// case-sensitive, and in practice no mailbox is either.
func normalize(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// CallsFor reports whether a permanent failure of category cat means the
// address will not work, so that it is suppressed: the mailbox or the
// domain does not exist. A full mailbox, a policy refusal or spam content
// say nothing of the address.
func CallsFor(cat bounce.Category) bool {
	return cat == bounce.UnknownUser || cat == bounce.UnknownDomain
}
