package admin

import (
	"errors"
	"fmt"
	"net/http"

	"outbound/queue"
)

// ActingSenderHeader names the sender on whose behalf a request is made.
// The web interface sets it on every call it makes for a signed-in sender
// (never for an operator); the API then lets the request act only on that
// sender itself. The header can only take rights away, so it needs no
// protection of its own: the bearer token is still required, and a token
// holder may simply leave the header out.
//
// With the header, a request may read the sender's own user, usage and
// messages; change its own sender settings (display_name, reply_to), its
// own SMTP server (which must then be on a public address, unless the
// operator allows others: Options.AllowPrivateHosts) or go back to the
// default route; test a connection; retry, bounce or delete its own
// messages; read its own messages' events; and list and lift its own
// suppressions. Everything else is refused with 403: limits, allowed senders,
// SPF policy, passwords, routes, named smarthosts, the key, other users.
const ActingSenderHeader = "Outbound-Acting-Sender"

// actingSender is the sender a request acts for, "" for an operator.
func actingSender(r *http.Request) string { return r.Header.Get(ActingSenderHeader) }

// forbidden is a refusal of what a sender may not do.
func forbidden(format string, args ...any) error {
	return &httpError{status: http.StatusForbidden, msg: fmt.Sprintf(format, args...)}
}

// operatorsOnly refuses a request made for a sender.
func operatorsOnly(r *http.Request) error {
	if s := actingSender(r); s != "" {
		return forbidden("only an operator may do this (%s %s); sender %s may change only its own settings", r.Method, r.URL.Path, s)
	}
	return nil
}

// selfOnly lets a sender through only when the route's {name} is the
// sender itself.
func selfOnly(r *http.Request) error {
	if s := actingSender(r); s != "" && r.PathValue("name") != s {
		return forbidden("sender %s may see and change only its own user, not %s", s, r.PathValue("name"))
	}
	return nil
}

// anyone lets a sender through: the handler itself limits what it does
// for one (its own messages only, its own stored password only).
func anyone(*http.Request) error { return nil }

// ownMessage lets a sender through only to a message it submitted. A
// message of someone else's is "not found", as if it did not exist: a
// queue ID is no one else's business. In a cluster a message another node
// holds is the sender's when its events in the shared log say so.
func (a *api) ownMessage(r *http.Request) error {
	s := actingSender(r)
	if s == "" {
		return nil
	}
	id := r.PathValue("id")
	m, err := a.Queue.Get(id)
	if errors.Is(err, queue.ErrNotFound) {
		d, ok, lerr := a.elsewhere(id)
		if lerr != nil {
			return lerr
		}
		if ok {
			m, err = d.Message, nil
		}
	}
	if err != nil {
		return err
	}
	if m.User != s {
		return notFound(id)
	}
	return nil
}

// notFound is the refusal of a message of someone else's: the words of a
// message that does not exist, as a plain 404 (never queue.ErrNotFound,
// whose 404 the API may turn into "it is on another node": that is no
// one else's business either).
func notFound(id string) error {
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("%v: %s", queue.ErrNotFound, id)}
}

// errSenderField refuses a field of a request that only operators may set.
func errSenderField(sender, field string) error {
	return forbidden("only an operator may set %s; sender %s may not", field, sender)
}
