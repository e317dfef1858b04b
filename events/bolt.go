package events

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/queue"
	"outbound/store"
)

var (
	eventsBucket    = []byte("events")
	byMessageBucket = []byte("events-by-message")
)

// Bolt is the Store in the shared store (package store): the name is from
// when that was always the bbolt file.
type Bolt struct {
	db store.DB
	// counted is told of every event stored (a metric); may be nil.
	counted func(Kind)
	// outbox, when set, is given every event in the transaction that
	// stores it (SetOutbox).
	outbox Outbox
}

// Outbox is another owner that acts on events where they are stored
// (package webhooks queues them for users' endpoints): its Put runs in the
// transaction that stores the events, so an event is queued exactly when
// it is stored, never for one rolled back nor lost for one committed. Put
// may run more than once for one commit, like Bolt.Put. Committed is told
// after a commit that Counted reports (a hint to look now: retention's
// Redacted events are not reported).
type Outbox interface {
	Put(tx store.Tx, evs []Event) error
	Committed()
}

// SetOutbox sets the Outbox; call it before events are recorded.
func (b *Bolt) SetOutbox(o Outbox) { b.outbox = o }

var _ Store = (*Bolt)(nil)

// OpenBolt creates the buckets if needed. counted, when not nil, is
// called for each event after the transaction that stored it committed
// (metrics count events by kind).
func OpenBolt(db store.DB, counted func(Kind)) (*Bolt, error) {
	err := db.Update(func(tx store.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(eventsBucket); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(refsBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(byMessageBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating event buckets: %w", err)
	}
	if counted == nil {
		counted = func(Kind) {}
	}
	return &Bolt{db: db, counted: counted}, nil
}

// Put stores evs in tx, the transaction of the queue change they report
// (Write gives it as a queue.TxHook). It may run more than once for one commit
// (groupcommit retries a failed shared transaction alone), and reads only
// memory and tx. An event of a kind written without its message's tags and
// metadata (a provider's report, redacted) takes them from the message's
// earlier events in tx (inherit); the others are stored as given, with no
// read. Call Counted once the transaction committed.
func (b *Bolt) Put(tx store.Tx, evs ...Event) error {
	all, idx := tx.Bucket(eventsBucket), tx.Bucket(byMessageBucket)
	stored := make([]Event, 0, len(evs))
	for _, e := range evs {
		if err := inherit(tx, &e); err != nil {
			return err
		}
		seq, err := all.NextSequence()
		if err != nil {
			return err
		}
		key := make([]byte, 16)
		binary.BigEndian.PutUint64(key, uint64(e.At.UnixNano()))
		binary.BigEndian.PutUint64(key[8:], seq)
		e.ID = hex.EncodeToString(key)
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := all.Put(key, v); err != nil {
			return err
		}
		if err := idx.Put(messageKey(e.Message, key), nil); err != nil {
			return err
		}
		if err := putRefs(tx, e); err != nil {
			return err
		}
		stored = append(stored, e)
	}
	if b.outbox != nil {
		return b.outbox.Put(tx, stored)
	}
	return nil
}

// Write is Put of evs as a queue.TxHook, for the queue change they report:
// a caller passes it to the queue (Add, UpdateAlso) and needs no bbolt of
// its own. Call Counted with evs once the change committed. The events go
// to the queue's bbolt file: right only while the store is that file.
func (b *Bolt) Write(evs ...Event) queue.TxHook {
	return func(tx *bolt.Tx) error { return b.Put(store.BoltTx(tx), evs...) }
}

// Counted counts events stored by Put, after their commit.
func (b *Bolt) Counted(evs []Event) {
	for _, e := range evs {
		b.counted(e.Kind)
	}
	if b.outbox != nil && len(evs) > 0 {
		b.outbox.Committed()
	}
}

func messageKey(id string, key []byte) []byte {
	return append([]byte(id+"/"), key...)
}

// Record stores events in a transaction of their own. A provider's event
// takes its message's tags and metadata from the message's earlier events
// (Put); if the message is gone already (its stub and events deleted since
// the event was matched), it is stored without them.
func (b *Bolt) Record(evs ...Event) error {
	if err := b.db.Update(func(tx store.Tx) error { return b.Put(tx, evs...) }); err != nil {
		return fmt.Errorf("recording events: %w", err)
	}
	b.Counted(evs)
	return nil
}

// ForMessage returns a message's events, oldest first.
func (b *Bolt) ForMessage(id string) ([]Event, error) {
	var out []Event
	err := b.db.View(func(tx store.Tx) error {
		all := tx.Bucket(eventsBucket)
		prefix := []byte(id + "/")
		c := tx.Bucket(byMessageBucket).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			v := all.Get(k[len(prefix):])
			if v == nil {
				continue
			}
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %x: %w", k[len(prefix):], err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// List returns a page of events in key order (time, then arrival).
func (b *Bolt) List(q Query) (Page, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	var start []byte
	if !q.Since.IsZero() {
		start = make([]byte, 8)
		binary.BigEndian.PutUint64(start, uint64(max(q.Since.UnixNano(), 0)))
	}
	var after []byte
	if q.Cursor != "" {
		c, err := hex.DecodeString(q.Cursor)
		if err != nil || len(c) != 16 {
			return Page{}, fmt.Errorf("invalid cursor %q", q.Cursor)
		}
		after = c
		if bytes.Compare(c, start) > 0 {
			start = c
		}
	}
	page := Page{Events: []Event{}}
	err := b.db.View(func(tx store.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		k, v := c.First()
		if start != nil {
			k, v = c.Seek(start)
		}
		for ; k != nil; k, v = c.Next() {
			if after != nil && bytes.Equal(k, after) {
				continue
			}
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %x: %w", k, err)
			}
			if q.User != "" && e.User != q.User {
				continue
			}
			if len(page.Events) == limit {
				page.Next = page.Events[limit-1].ID
				return nil
			}
			page.Events = append(page.Events, e)
		}
		return nil
	})
	return page, err
}

// DeleteMessage removes a message's events in a transaction of its own.
func (b *Bolt) DeleteMessage(id string) error {
	return b.db.Update(func(tx store.Tx) error { return DeleteTx(tx, id) })
}

// DeleteTx removes a message's events in tx: the queue's retention calls
// it in the transaction that deletes the message's stub, so both go at
// once. It does nothing when the buckets do not exist (a queue opened
// without an event store).
func DeleteTx(tx store.Tx, id string) error {
	all, idx := tx.Bucket(eventsBucket), tx.Bucket(byMessageBucket)
	if all == nil || idx == nil {
		return nil
	}
	prefix := []byte(id + "/")
	var keys [][]byte
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := deleteRefs(tx, id, all.Get(k[len(prefix):])); err != nil {
			return err
		}
		if err := all.Delete(k[len(prefix):]); err != nil {
			return err
		}
		if err := idx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Redacted records, in the retention sweep's transaction, that the
// message's content was removed (queue.Journal). The event carries the
// message's tags and metadata, read from its earlier events in tx (Put);
// a message with no events left (none were stored, or an event store
// was added later) gets it without them. It is not counted in the
// metrics: the sweep's transaction may be retried, and the sweep logs its
// own counts.
func (b *Bolt) Redacted(tx *bolt.Tx, id, user string, at time.Time) error {
	return b.Put(store.BoltTx(tx), Event{At: at, Kind: Redacted, Message: id, User: user})
}

// Removed deletes the message's events in the transaction that deletes it
// (queue.Journal): they are kept exactly as long as its stub.
func (b *Bolt) Removed(tx *bolt.Tx, id string) error { return DeleteTx(store.BoltTx(tx), id) }

// Shipped tells the outbox (webhooks) of events another node's log wrote
// into this one (package ship) once their transaction committed. Unlike
// Counted it counts nothing: the node that recorded them counted them.
func (b *Bolt) Shipped(evs []Event) {
	if b.outbox != nil && len(evs) > 0 {
		b.outbox.Committed()
	}
}
