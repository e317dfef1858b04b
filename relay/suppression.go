package relay

import (
	"time"

	"outbound/events"
	"outbound/queue"
	"outbound/suppression"
)

// Suppressions is the suppression list (package suppression): a recipient
// whose address is known not to work, or who complained, is refused at
// RCPT, so the app learns at once and its provider never sees the attempt.
type Suppressions interface {
	Lookup(user, addr string) (*suppression.Entry, error)
}

var _ Suppressions = (*suppression.Bolt)(nil)

// Events is the event log (package events), written in the transaction
// that queues the message: Write gives the write as a hook the spool runs
// in that transaction, so a received event exists exactly when the
// message does.
type Events interface {
	Write(evs ...events.Event) queue.TxHook
	Counted(evs []events.Event)
}

var _ Events = (*events.Bolt)(nil)

// suppressed answers a RCPT to a suppressed recipient, or nil. A failed
// lookup is a temporary refusal: the recipient may be suppressed.
func (s *session) suppressed(to string) *reply {
	sup := s.b.opts.Suppressions
	if sup == nil {
		return nil
	}
	e, err := sup.Lookup(s.user.Name, to)
	if err != nil {
		s.b.log.Error("suppression lookup failed", "user", s.user.Name, "rcpt", to, "err", err)
		return errTemporary
	}
	if e == nil {
		return nil
	}
	s.b.log.Info("recipient suppressed", "user", s.user.Name, "rcpt", to, "kind", e.Kind, "since", e.Created)
	return errSuppressed(to, e)
}

// receivedEvents are the writes of a received event per recipient of m,
// for the transaction that queues it, and what to do once it committed.
func (s *session) receivedEvents(m *queue.Message, at time.Time) ([]queue.TxHook, func()) {
	log := s.b.opts.Events
	if log == nil {
		return nil, func() {}
	}
	evs := make([]events.Event, 0, len(m.Recipients))
	for _, r := range m.Recipients {
		evs = append(evs, events.Event{At: at, Kind: events.Received, Message: m.ID, User: m.User, Recipient: r.Addr,
			Tags: m.Tags, Metadata: m.Metadata})
	}
	return []queue.TxHook{log.Write(evs...)}, func() { log.Counted(evs) }
}
