// Package ship moves what a relay node records in its own bbolt file, in
// the queue's transactions, to the store that several nodes share
// (store.Postgres): the events of its messages, their removal at
// retention, and the suppressions its deliveries learn.
//
// A node writes these in the transaction that stores the change they are
// about (a message queued, an attempt's outcome), so that they exist
// exactly when the change does; with one bbolt file for everything that
// is the whole story. With a shared store that transaction cannot reach
// the database, so the writes go to an outbox bucket in the node's file,
// one entry per write keyed by the outbox's sequence (the order of the
// commits), and a Shipper copies them to the shared store in that order:
// a batch of entries and the number of the last one shipped (the "mark")
// in one shared transaction, then the batch is deleted from the outbox. A
// crash between the two ships nothing twice: the mark says where the
// shared store is. While the database is down entries wait in the outbox,
// durable, and ship when it is back.
//
// The mark belongs to the outbox, not to the node's name: each outbox has
// a random id, made with it in the node's file, and the marks are kept by
// that id. Nodes that go by one name (the default, the relay's hostname,
// is often the same on every node behind a load balancer) and a node
// whose file was replaced by a fresh one thus never mistake another
// outbox's mark for their own, whose entries are numbered from 1 too. A
// file restored from a copy older than its mark has its numbering moved
// past the mark at New, so that what it writes next is not taken for
// entries already shipped.
package ship

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/queue"
	"outbound/store"
	"outbound/suppression"
)

var (
	// outboxBucket is in the node's own file: entries to ship.
	outboxBucket = []byte("ship-outbox")
	// outboxIDBucket is in the node's own file: outboxIDKey → the
	// outbox's random id (16 bytes), made with the outbox.
	outboxIDBucket = []byte("ship-outbox-id")
	outboxIDKey    = []byte("id")
	// marksBucket is in the shared store: an outbox's id (hex) → the
	// outbox sequence of the last entry shipped from it (8 bytes
	// big-endian).
	marksBucket = []byte("ship-marks")
)

// batch is how many entries one shared transaction ships.
const batch = 256

// entry is one outbox record: exactly one field is set.
type entry struct {
	Event    *events.Event      `json:"event,omitempty"`
	Removed  string             `json:"removed,omitempty"`
	Suppress *suppression.Entry `json:"suppress,omitempty"`
}

// Options configure a Shipper.
type Options struct {
	// Node is this node's name, put in the events it ships.
	Node string
	// Counted is told of each event once the transaction that wrote it to
	// the outbox committed (metrics count events by kind); may be nil.
	Counted func(events.Kind)
	Logger  *slog.Logger
	// Retry is the pause after a failed shipment; 0 means 1 s.
	Retry time.Duration
}

// Shipper writes to the outbox of local (the node's own file) and ships to
// the shared event log and suppression list.
type Shipper struct {
	local      store.DB
	shared     store.DB
	events     *events.Bolt
	suppressed *suppression.Bolt
	o          Options
	wake       chan struct{}
	// markKey is this outbox's key in marksBucket.
	markKey []byte
}

// New opens the outbox in local and the marks in the shared store that
// evs and sup are on. Call it before anything writes to the outbox.
func New(local, shared store.DB, evs *events.Bolt, sup *suppression.Bolt, o Options) (*Shipper, error) {
	id, seq, err := openOutbox(local)
	if err != nil {
		return nil, fmt.Errorf("ship: outbox: %w", err)
	}
	markKey := []byte(hex.EncodeToString(id))
	var mark uint64
	if err := shared.Update(func(tx store.Tx) error {
		marks, err := tx.CreateBucketIfNotExists(marksBucket)
		if err != nil {
			return err
		}
		if v := marks.Get(markKey); len(v) == 8 {
			mark = binary.BigEndian.Uint64(v)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("ship: marks: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if mark > seq {
		// The file is a copy older than what was shipped from it: its
		// entries up to the mark shipped; number new ones after it.
		o.Logger.Warn("this node's file is older than the events it shipped (restored from a copy?): its outbox continues after them",
			"outbox_sequence", seq, "shipped", mark)
		if err := local.Update(func(tx store.Tx) error {
			return tx.Bucket(outboxBucket).SetSequence(mark)
		}); err != nil {
			return nil, fmt.Errorf("ship: outbox: %w", err)
		}
	}
	if o.Counted == nil {
		o.Counted = func(events.Kind) {}
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	return &Shipper{local: local, shared: shared, events: evs, suppressed: sup, o: o,
		wake: make(chan struct{}, 1), markKey: markKey}, nil
}

// openOutbox creates the outbox and its id in local when they do not exist
// and returns the id and the outbox's sequence.
func openOutbox(local store.DB) (id []byte, seq uint64, err error) {
	err = local.Update(func(tx store.Tx) error {
		outbox, err := tx.CreateBucketIfNotExists(outboxBucket)
		if err != nil {
			return err
		}
		ids, err := tx.CreateBucketIfNotExists(outboxIDBucket)
		if err != nil {
			return err
		}
		id = bytes.Clone(ids.Get(outboxIDKey))
		if len(id) == 0 {
			id = make([]byte, 16)
			rand.Read(id)
			if err := ids.Put(outboxIDKey, id); err != nil {
				return err
			}
		}
		seq = outbox.Sequence()
		return nil
	})
	return id, seq, err
}

// appendTx adds entries to the outbox in tx, a transaction of the node's
// own file. It may run more than once for one commit (queue.TxHook).
func appendTx(tx store.Tx, es ...entry) error {
	b := tx.Bucket(outboxBucket)
	if b == nil {
		return fmt.Errorf("ship: no outbox bucket")
	}
	for _, e := range es {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
	}
	return nil
}

// Put writes evs to the outbox in tx (delivery's EventWriter).
func (s *Shipper) Put(tx store.Tx, evs ...events.Event) error {
	es := make([]entry, len(evs))
	for i := range evs {
		es[i] = entry{Event: &evs[i]}
	}
	return appendTx(tx, es...)
}

// Write is Put as a queue.TxHook (the relay's Events).
func (s *Shipper) Write(evs ...events.Event) queue.TxHook {
	return func(tx *bolt.Tx) error { return s.Put(store.BoltTx(tx), evs...) }
}

// Counted counts evs once their transaction committed and wakes the
// shipper.
func (s *Shipper) Counted(evs []events.Event) {
	for _, e := range evs {
		s.o.Counted(e.Kind)
	}
	if len(evs) > 0 {
		s.Wake()
	}
}

// Wake asks for a shipment now rather than at the next tick.
func (s *Shipper) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Suppressions is the outbox as delivery's Suppressor: a suppression
// learnt from a permanent failure ships to the shared list.
func (s *Shipper) Suppressions() Suppressor { return Suppressor{s} }

// Suppressor writes suppressions to the outbox.
type Suppressor struct{ s *Shipper }

// Put writes e to the outbox in tx.
func (p Suppressor) Put(tx store.Tx, e suppression.Entry) error {
	return appendTx(tx, entry{Suppress: &e})
}

// Redacted records the redaction of message id's content (queue.Journal).
func (s *Shipper) Redacted(tx *bolt.Tx, id, user string, at time.Time) error {
	return s.Put(store.BoltTx(tx), events.Event{At: at, Kind: events.Redacted, Message: id, User: user})
}

// Removed ships the deletion of message id's events (queue.Journal).
func (s *Shipper) Removed(tx *bolt.Tx, id string) error {
	return appendTx(store.BoltTx(tx), entry{Removed: id})
}

// Run ships until done is closed: at once when woken, else every second
// (retention's entries wake nobody), and after a failure every Retry.
func (s *Shipper) Run(done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failing := false
	for {
		n, err := s.ShipOnce()
		switch {
		case err != nil:
			if !failing {
				s.o.Logger.Warn("events wait in this node's outbox: shipping them to the shared store failed", "err", err)
			}
			failing = true
			select {
			case <-done:
				return
			case <-time.After(s.o.Retry):
			}
			continue
		case failing:
			s.o.Logger.Info("the shared store takes events again")
			failing = false
		}
		if n == batch {
			continue // more are waiting
		}
		select {
		case <-done:
			// What is left ships at the next start.
			return
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// ShipOnce ships up to one batch and returns how many entries it shipped.
func (s *Shipper) ShipOnce() (int, error) {
	var keys [][]byte
	var es []entry
	err := s.local.View(func(tx store.Tx) error {
		c := tx.Bucket(outboxBucket).Cursor()
		for k, v := c.First(); k != nil && len(keys) < batch; k, v = c.Next() {
			var e entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("ship: outbox entry %x: %w", k, err)
			}
			keys = append(keys, append([]byte(nil), k...))
			es = append(es, e)
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	last := keys[len(keys)-1]
	var shipped []events.Event
	err = s.shared.Update(func(tx store.Tx) error {
		shipped = shipped[:0]
		marks := tx.Bucket(marksBucket)
		if marks == nil {
			return fmt.Errorf("ship: no marks bucket")
		}
		mark := marks.Get(s.markKey) // nil sorts before every key
		for i, e := range es {
			if bytes.Compare(keys[i], mark) <= 0 {
				continue // shipped before a crash kept it in the outbox
			}
			switch {
			case e.Event != nil:
				ev := *e.Event
				ev.Node = s.o.Node
				if err := s.events.Put(tx, ev); err != nil {
					return err
				}
				shipped = append(shipped, ev)
			case e.Removed != "":
				if err := events.DeleteTx(tx, e.Removed); err != nil {
					return err
				}
			case e.Suppress != nil && s.suppressed != nil:
				if err := s.suppressed.Put(tx, *e.Suppress); err != nil {
					return err
				}
			}
		}
		if bytes.Compare(last, mark) <= 0 {
			// All shipped before: the mark stays where it is, ahead of
			// this batch, for the leftovers after it.
			return nil
		}
		return marks.Put(s.markKey, last)
	})
	if err != nil {
		return 0, err
	}
	s.events.Shipped(shipped)
	// Shipped: forget them here. Should this fail, the mark keeps the
	// next round from shipping them again.
	if err := s.local.Update(func(tx store.Tx) error {
		b := tx.Bucket(outboxBucket)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return len(keys), fmt.Errorf("ship: clearing the outbox: %w", err)
	}
	return len(keys), nil
}
