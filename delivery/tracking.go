package delivery

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/bounce"
	"outbound/events"
	"outbound/queue"
	"outbound/store"
	"outbound/suppression"
)

// What an attempt records besides the message: an event per recipient it
// judged and per notification it queued (package events), and the
// suppressions its failures call for (package suppression). They are
// written in the queue update that stores the outcome (queue.UpdateAlso),
// so none is recorded for an outcome that was not stored, nor lost for one
// that was.

// EventWriter writes events in another owner's transaction (events.Bolt).
type EventWriter interface {
	Put(tx store.Tx, evs ...events.Event) error
	// Counted is told of the events once their transaction committed.
	Counted(evs []events.Event)
}

var _ EventWriter = (*events.Bolt)(nil)

// Suppressor writes a suppression in another owner's transaction
// (suppression.Bolt).
type Suppressor interface {
	Put(tx store.Tx, e suppression.Entry) error
}

var _ Suppressor = (*suppression.Bolt)(nil)

// tracking collects what one attempt (or bounce) records besides the
// message.
type tracking struct {
	evs []events.Event
	sup []suppression.Entry
}

// recipient notes what the attempt did to r: an event for its new status
// and, for a permanent failure saying the address will not work, its
// suppression.
func (t *tracking) recipient(m *queue.Message, r *queue.Recipient, upstream string, v bounce.Verdict, now time.Time) {
	e := events.Event{At: now, Message: m.ID, User: m.User, Recipient: r.Addr, Upstream: upstream, Reply: r.Reply, Attempt: r.Attempts,
		Tags: m.Tags, Metadata: m.Metadata}
	switch r.Status {
	case queue.Delivered:
		e.Kind = events.Relayed
		e.ProviderID = events.ParseProviderID(r.Reply)
		e.MessageID = m.MessageID
	case queue.Failed:
		e.Kind = events.Failed
		e.Detail = string(v.Category)
		// Only the upstream's own permanent verdict: a recipient that ran
		// out of time says nothing certain of its address.
		if v.Class == bounce.Permanent && suppression.CallsFor(v.Category) && m.User != "" {
			t.sup = append(t.sup, suppression.Entry{User: m.User, Addr: r.Addr, Kind: suppression.Bounce,
				Reason: r.Reply, Message: m.ID, Created: now})
		}
	default:
		e.Kind = events.Deferred
	}
	t.evs = append(t.evs, e)
}

// writes returns the attempt's writes for queue.UpdateAlso, and what to do
// once they are committed (count the events). The notifications' IDs are
// read inside the transaction: the queue gives them theirs just before.
func (d *Deliverer) writes(t *tracking, m *queue.Message, additions []queue.Addition, now time.Time) ([]queue.TxHook, func()) {
	if d.opts.Events == nil && d.opts.Suppressions == nil {
		return nil, func() {}
	}
	var written []events.Event
	hook := func(btx *bolt.Tx) error {
		tx := store.BoltTx(btx)
		written = append(t.evs[:len(t.evs):len(t.evs)], dsnEvents(m, additions, now)...)
		if d.opts.Events != nil {
			if err := d.opts.Events.Put(tx, written...); err != nil {
				return err
			}
		}
		if d.opts.Suppressions != nil {
			for _, e := range t.sup {
				if err := d.opts.Suppressions.Put(tx, e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return []queue.TxHook{hook}, func() {
		if d.opts.Events != nil {
			d.opts.Events.Counted(written)
		}
	}
}

// dsnEvents is an event for each notification queued about m.
func dsnEvents(m *queue.Message, additions []queue.Addition, now time.Time) []events.Event {
	var out []events.Event
	for _, a := range additions {
		to := ""
		if len(a.Message.Recipients) > 0 {
			to = a.Message.Recipients[0].Addr
		}
		out = append(out, events.Event{At: now, Kind: events.DSNQueued, Message: m.ID, User: m.User,
			Detail: fmt.Sprintf("notification %s to %s", a.Message.ID, to), Tags: m.Tags, Metadata: m.Metadata})
	}
	return out
}
