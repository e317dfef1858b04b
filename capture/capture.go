// Package capture keeps the messages that the capture route "delivers":
// instead of leaving through a smarthost, a message routed to capture is
// stored here, as the bytes that would have gone upstream, so that a
// developer (or an app's test suite) can look at what was sent. Capture is
// an upstream like the others: route picks it, delivery hands it the
// message and records success; the relay and the queue know nothing of it.
//
// On disk: bucket `captured` in the shared store (package store), queue
// ID → JSON Message (envelope, capture time, the bytes). Captured content obeys
// retention.content like delivered mail: the store is a queue.Journal, so
// the queue's retention sweep redacts a capture's bytes in the very
// transaction that redacts the queued message's, and removes the capture
// with the message's stub.
package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/queue"
	"outbound/store"
)

var bucket = []byte("captured")

// ErrNotFound is returned for an id that names no captured message.
var ErrNotFound = errors.New("no such captured message")

// Message is one captured message.
type Message struct {
	// ID is the queue ID of the message (queue.Message.ID): the same ID the
	// client got in its 250 reply and that `queue show` and the events use.
	ID string `json:"id"`
	// User is the login that submitted it.
	User string `json:"user"`
	// From is the envelope sender ("" for a DSN).
	From string `json:"from"`
	// To are the envelope recipients captured.
	To []string `json:"to"`
	// Captured is when delivery handed it to the store.
	Captured time.Time `json:"captured"`
	// Subject is the decoded Subject header, for listings and the filter.
	Subject string `json:"subject"`
	// Size is the length of the message in bytes, kept after redaction.
	Size int `json:"size"`
	// Redacted is when retention removed Body; zero while it is kept.
	Redacted time.Time `json:"redacted,omitzero"`
	// Body is the message exactly as it would have been sent upstream.
	// Empty in listings and once redacted.
	Body []byte `json:"body,omitempty"`
}

// Filter narrows a listing: substrings, case-insensitive; empty matches all.
type Filter struct {
	To      string
	Subject string
}

// Store is what the admin API and delivery need of captured messages.
type Store interface {
	// Put stores m durably (fsynced) before it returns.
	Put(m *Message) error
	// List returns the captured messages matching f, newest first,
	// without their bodies.
	List(f Filter) ([]Message, error)
	// Get returns one message with its body.
	Get(id string) (*Message, error)
	Delete(id string) error
	// Clear deletes every captured message and returns how many.
	Clear() (int, error)
}

// Bolt is the Store in the shared store (package store): the name is from
// when that was always the bbolt file.
type Bolt struct {
	db  store.DB
	now func() time.Time
}

var (
	_ Store         = (*Bolt)(nil)
	_ queue.Journal = (*Bolt)(nil)
)

// OpenBolt creates the bucket if needed.
func OpenBolt(db store.DB) (*Bolt, error) {
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	return &Bolt{db: db, now: time.Now}, nil
}

// Put stores m (overwriting a capture of the same ID: a retried attempt).
func (s *Bolt) Put(m *Message) error {
	if m.Size == 0 {
		m.Size = len(m.Body)
	}
	if m.Subject == "" {
		m.Subject = Subject(m.Body)
	}
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx store.Tx) error {
		return tx.Bucket(bucket).Put([]byte(m.ID), v)
	})
}

// List returns the matching messages, newest first, without bodies.
func (s *Bolt) List(f Filter) ([]Message, error) {
	to, subject := strings.ToLower(f.To), strings.ToLower(f.Subject)
	list := []Message{}
	err := s.db.View(func(tx store.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("captured message %s: %w", k, err)
			}
			m.Body = nil
			if subject != "" && !strings.Contains(strings.ToLower(m.Subject), subject) {
				return nil
			}
			if to != "" && !strings.Contains(strings.ToLower(strings.Join(m.To, "\n")), to) {
				return nil
			}
			list = append(list, m)
			return nil
		})
	})
	sort.SliceStable(list, func(i, j int) bool { return list[i].Captured.After(list[j].Captured) })
	return list, err
}

// Get returns the message id with its body.
func (s *Bolt) Get(id string) (*Message, error) {
	var m Message
	err := s.db.View(func(tx store.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Delete removes the message id.
func (s *Bolt) Delete(id string) error {
	return s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return b.Delete([]byte(id))
	})
}

// Clear removes every captured message.
func (s *Bolt) Clear() (int, error) {
	n := 0
	err := s.db.Update(func(tx store.Tx) error {
		n = tx.Bucket(bucket).KeyN()
		if err := tx.DeleteBucket(bucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	return n, err
}

// Redacted removes the bytes of the capture of message id, in the queue's
// retention transaction (queue.Journal): captured content goes when the
// queued message's content goes, after retention.content.
func (s *Bolt) Redacted(tx *bolt.Tx, id, user string, at time.Time) error {
	b := store.BoltTx(tx).Bucket(bucket)
	v := b.Get([]byte(id))
	if v == nil {
		return nil
	}
	var m Message
	if err := json.Unmarshal(v, &m); err != nil {
		return fmt.Errorf("captured message %s: %w", id, err)
	}
	m.Body, m.Redacted = nil, at
	nv, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	return b.Put([]byte(id), nv)
}

// Removed deletes the capture of message id with the message's stub.
func (s *Bolt) Removed(tx *bolt.Tx, id string) error {
	return store.BoltTx(tx).Bucket(bucket).Delete([]byte(id))
}
