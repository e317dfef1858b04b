// Package queue is the relay's durable message queue, kept in a bbolt file.
//
// What is on disk (buckets in the shared bbolt file):
//
//	messages: ID → JSON of Message (envelope, per-recipient status, attempt
//	          history, next attempt time, finish and redaction times)
//	bodies:   ID → the message as it will be sent upstream (CRLF lines,
//	          with the headers the relay added)
//
// The durability order: Add writes both records in one bbolt transaction,
// and bbolt fsyncs before the transaction returns; only then does the relay
// answer 250. Concurrent Adds and Updates share one fsync (package
// groupcommit). Nothing is ever written with NoSync.
//
// Scheduling is in memory: Open loads every unfinished message into a
// timetable ordered by next attempt time, and Next hands a due message to
// one delivery worker at a time (a lease). A message leased when the
// process dies is simply due again at the next start, so delivery is
// at-least-once: a crash between the upstream's 250 and our Update can
// duplicate a message, never lose one.
package queue

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/groupcommit"
)

var (
	messagesBucket = []byte("messages")
	bodiesBucket   = []byte("bodies")
)

// ErrNotFound is returned for an unknown message ID.
var ErrNotFound = errors.New("no such message")

// ErrStopped is returned by Next once its done channel is closed.
var ErrStopped = errors.New("queue: stopped")

// Status is the state of one recipient.
type Status string

const (
	// Queued recipients are waiting for a (further) delivery attempt.
	Queued Status = "queued"
	// Delivered recipients were accepted by the upstream.
	Delivered Status = "delivered"
	// Failed recipients failed permanently; no further attempts are made.
	Failed Status = "failed"
)

// Recipient is one envelope recipient and what became of it.
type Recipient struct {
	// Addr is the RCPT TO address.
	Addr string `json:"addr"`
	// Status is where delivery to Addr stands.
	Status Status `json:"status"`
	// Reply is the upstream's last reply (or the network error) for this
	// recipient; shown by `queue show` and quoted in DSNs.
	Reply string `json:"reply,omitempty"`
	// Attempts counts delivery attempts that reached a verdict for Addr.
	Attempts int `json:"attempts,omitempty"`
	// Updated is when Status or Reply last changed.
	Updated time.Time `json:"updated,omitempty"`
	// Notify is the client's DSN NOTIFY list (RFC 3461), empty when not given.
	Notify []string `json:"notify,omitempty"`
	// ORCPT is the client's original recipient parameter (RFC 3461).
	ORCPT string `json:"orcpt,omitempty"`
	// DelayNotified is set once the sender was told this recipient is delayed.
	DelayNotified bool `json:"delay_notified,omitempty"`
	// DSNStatus is the RFC 3463 status of the last outcome ("2.0.0",
	// "4.2.2", "5.1.1"), as written in delivery status notifications.
	DSNStatus string `json:"dsn_status,omitempty"`
}

// Attempt records one delivery attempt; the last few are kept for operators.
type Attempt struct {
	At       time.Time     `json:"at"`
	Upstream string        `json:"upstream"`
	Duration time.Duration `json:"duration"`
	// Result summarises the outcome, e.g. "250 2.0.0 Ok" or the error.
	Result string `json:"result"`
}

// maxAttemptsKept bounds the attempt history stored with a message.
const maxAttemptsKept = 20

// Message is the queue's record of one accepted message.
type Message struct {
	// ID is the queue ID given to the client in "250 ... queued as ID".
	ID string `json:"id"`
	// User is the login that submitted the message; empty for mail the
	// relay generated itself (DSNs). Used for routing and quotas.
	User string `json:"user,omitempty"`
	// From is the envelope sender (MAIL FROM); empty for DSNs.
	From string `json:"from"`
	// Recipients are the accepted envelope recipients.
	Recipients []Recipient `json:"recipients"`
	// Route is the smarthost the message leaves through; empty for the
	// default route. Fixed at submission, read by delivery.
	Route string `json:"route,omitempty"`
	// MessageID is the header Message-ID, for logs and DSNs.
	MessageID string `json:"message_id,omitempty"`
	// Size is the body size in bytes.
	Size int `json:"size"`
	// UTF8 is set when the client used SMTPUTF8; delivery asks for it too.
	UTF8 bool `json:"utf8,omitempty"`
	// EnvID and Ret are the client's DSN parameters (RFC 3461).
	EnvID string `json:"envid,omitempty"`
	Ret   string `json:"ret,omitempty"`
	// Created is when the message was accepted.
	Created time.Time `json:"created"`
	// NextAttempt is when delivery is next due; zero once finished.
	NextAttempt time.Time `json:"next_attempt,omitempty"`
	// Attempts is the recent attempt history, newest last.
	Attempts []Attempt `json:"attempts,omitempty"`
	// Finished is when the last recipient reached a final status.
	Finished time.Time `json:"finished,omitempty"`
	// Redacted is when the body was removed by the retention sweeper.
	Redacted time.Time `json:"redacted,omitempty"`
	// ContentOf is the ID of the message whose content this one quotes: a
	// delivery status notification returns the original or its header
	// section. The sweeper redacts it no later than the original's content
	// (Retention.Content after the original finished), at once when the
	// original is gone; set by Update for its additions.
	ContentOf string `json:"content_of,omitempty"`
	// Tags and Metadata are the sender's own labels for the message, given
	// to the send API (never over SMTP): every event of the message
	// carries them, so the sender's webhooks can tell its messages apart
	// without keeping the queue ID. Kept in the stub: they are the
	// sender's names for the message, not its content.
	Tags     []string          `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Node is set only by the admin API, never by the queue nor stored:
	// in a cluster (docs/cluster.md) it lists, beside its own queue's
	// messages, those another node holds, as far as the shared event log
	// tells them, and Node names that node.
	Node string `json:"node,omitempty"`
}

// Pending reports whether any recipient still awaits delivery.
func (m *Message) Pending() bool {
	for _, r := range m.Recipients {
		if r.Status == Queued {
			return true
		}
	}
	return false
}

// RecordAttempt appends to the bounded attempt history.
func (m *Message) RecordAttempt(a Attempt) {
	m.Attempts = append(m.Attempts, a)
	if n := len(m.Attempts); n > maxAttemptsKept {
		m.Attempts = append(m.Attempts[:0:0], m.Attempts[n-maxAttemptsKept:]...)
	}
}

// Queue is the durable queue plus its in-memory timetable.
type Queue struct {
	db  *bolt.DB
	now func() time.Time
	// commit groups Adds and Updates from many goroutines into shared
	// transactions.
	commit *groupcommit.Committer

	mu     sync.Mutex
	sched  timetable
	leased map[string]bool
	// changed is closed and replaced whenever the timetable changes, waking
	// every waiting worker so each can look at the new earliest entry.
	changed chan struct{}
	// freedGen counts commits that removed content (sweeps, deletes);
	// wipedGen is the freedGen the last finished wipe of free pages
	// covered. A wipe is owed while they differ.
	freedGen, wipedGen uint64
	// retain wakes RunRetention after a Delete.
	retain chan struct{}
	// arrived holds when each unfinished message was accepted, for the
	// age of the oldest one (a monitoring gauge).
	arrived map[string]time.Time
	// journal is told of redactions and deletions in their transactions
	// (SetJournal); nil when no one listens.
	journal Journal
}

// Journal is another storage owner that keeps records about messages (the
// event log) and must hear, in the very transaction that makes the change,
// when a message's content is redacted and when the message is deleted for
// good, so that its records go with the stub and never outlive it. Like a
// TxHook its methods may run more than once per commit and must read only
// memory and tx.
type Journal interface {
	// Redacted: the content of message id (of user) was removed at at.
	Redacted(tx *bolt.Tx, id, user string, at time.Time) error
	// Removed: message id is deleted for good.
	Removed(tx *bolt.Tx, id string) error
}

// SetJournal sets the Journal; call it before RunRetention and Delete.
func (q *Queue) SetJournal(j Journal) { q.journal = j }

// Open creates the queue's buckets if needed and loads every unfinished
// message into the timetable. now is the clock (nil means time.Now).
func Open(db *bolt.DB, now func() time.Time) (*Queue, error) {
	if now == nil {
		now = time.Now
	}
	q := &Queue{db: db, now: now, commit: groupcommit.New(db), leased: make(map[string]bool), changed: make(chan struct{}), arrived: make(map[string]time.Time), retain: make(chan struct{}, 1)}
	err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(messagesBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bodiesBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating queue buckets: %w", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(messagesBucket).ForEach(func(k, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("message %s: %w", k, err)
			}
			if m.Pending() {
				q.sched.set(m.ID, m.NextAttempt)
				q.arrived[m.ID] = m.Created
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading queue: %w", err)
	}
	return q, nil
}

// NewID returns a fresh queue ID: time-ordered, 20 hex digits.
func NewID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%012x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// TxHook is a write another storage owner makes in the transaction that
// stores a message (the relay passes quota.Reservation.Write), so that
// both are durable with one commit. A named type lets callers hand one
// over without importing bbolt. Like the message's own write it may run
// more than once (see groupcommit.Committer.Update), and must read only
// memory.
type TxHook func(tx *bolt.Tx) error

// Add stores a new message and its body durably, then schedules it for
// immediate delivery. When Add returns nil the message survives any crash.
//
// alsoWrite are further writes that must be durable together with the
// message, in the same transaction (the relay's quota count): one commit
// and one fsync instead of two in a row.
func (q *Queue) Add(m *Message, body []byte, alsoWrite ...TxHook) error {
	q.prepare(m, body)
	meta, err := json.Marshal(m)
	if err != nil {
		return err
	}
	err = q.commit.Update(func(tx *bolt.Tx) error {
		for _, write := range alsoWrite {
			if err := write(tx); err != nil {
				return err
			}
		}
		return putNew(tx, m.ID, meta, body)
	})
	if err != nil {
		return fmt.Errorf("storing message: %w", err)
	}
	q.schedule(m.ID, m.NextAttempt, m.Created)
	return nil
}

// prepare fills in what a new message's record needs.
func (q *Queue) prepare(m *Message, body []byte) {
	if m.ID == "" {
		m.ID = NewID(q.now())
	}
	if m.Created.IsZero() {
		m.Created = q.now()
	}
	if m.NextAttempt.IsZero() {
		m.NextAttempt = m.Created
	}
	m.Size = len(body)
}

func putNew(tx *bolt.Tx, id string, meta, body []byte) error {
	if err := putBody(tx, id, body); err != nil {
		return err
	}
	return tx.Bucket(messagesBucket).Put([]byte(id), meta)
}

// Next blocks until a message is due, leases it to the caller and returns
// it. The caller must hand it back with Update (or Release).
func (q *Queue) Next(done <-chan struct{}) (*Message, error) {
	for {
		select {
		case <-done:
			return nil, ErrStopped
		default:
		}
		q.mu.Lock()
		id, when, ok := q.sched.earliest()
		changed := q.changed
		now := q.now()
		if ok && !when.After(now) {
			q.sched.remove(id)
			q.leased[id] = true
			q.mu.Unlock()
			m, err := q.Get(id)
			if err != nil {
				q.Release(id, now.Add(time.Minute))
				return nil, err
			}
			return m, nil
		}
		q.mu.Unlock()

		var timer *time.Timer
		var fire <-chan time.Time
		if ok {
			timer = time.NewTimer(when.Sub(now))
			fire = timer.C
		}
		select {
		case <-done:
			return nil, ErrStopped
		case <-changed:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Release returns a leased message to the timetable without changing it,
// due again at when.
func (q *Queue) Release(id string, when time.Time) {
	q.mu.Lock()
	delete(q.leased, id)
	q.mu.Unlock()
	q.schedule(id, when)
}

// Addition is a new message to add together with an Update: the
// notifications an attempt generated. They quote the message (its header
// section at least), so Update sets their ContentOf to its ID when unset:
// their copy of its content expires with it.
type Addition struct {
	Message *Message
	Body    []byte
}

// Update durably stores a message after a delivery attempt, together with
// any new messages (delivery status notifications) in the same
// transaction, so that a crash can neither lose a notification nor record
// an outcome without its notification. If m is still pending it goes back
// in the timetable at its NextAttempt. It ends the caller's lease.
//
// When the write fails (a full disk, an I/O error) nothing changed on disk
// and the caller keeps the lease: the message is not handed to anyone else,
// whose attempt would start from the stale record and send the message
// again. The caller must call Update again (delivery retries the write
// until it succeeds) or Release.
func (q *Queue) Update(m *Message, additions ...Addition) error {
	return q.UpdateAlso(m, nil, additions...)
}

// UpdateAlso is Update with further writes of other storage owners in the
// same transaction (the attempt's events, the suppressions it calls for),
// as Add's alsoWrite: they are durable exactly when the outcome is. They
// run after the additions have their IDs.
func (q *Queue) UpdateAlso(m *Message, alsoWrite []TxHook, additions ...Addition) error {
	if !m.Pending() {
		if m.Finished.IsZero() {
			m.Finished = q.now()
		}
		m.NextAttempt = time.Time{}
	}
	meta, err := json.Marshal(m)
	if err != nil {
		return err
	}
	added := make([][]byte, len(additions))
	for i, a := range additions {
		q.prepare(a.Message, a.Body)
		if a.Message.ContentOf == "" {
			a.Message.ContentOf = m.ID
		}
		if added[i], err = json.Marshal(a.Message); err != nil {
			return err
		}
	}
	err = q.commit.Update(func(tx *bolt.Tx) error {
		for i, a := range additions {
			if err := putNew(tx, a.Message.ID, added[i], a.Body); err != nil {
				return err
			}
		}
		for _, write := range alsoWrite {
			if err := write(tx); err != nil {
				return err
			}
		}
		return tx.Bucket(messagesBucket).Put([]byte(m.ID), meta)
	})
	if err != nil {
		return fmt.Errorf("updating message %s: %w", m.ID, err)
	}
	q.mu.Lock()
	delete(q.leased, m.ID)
	q.mu.Unlock()
	if m.Pending() {
		q.schedule(m.ID, m.NextAttempt, m.Created)
	} else {
		q.mu.Lock()
		delete(q.arrived, m.ID)
		q.mu.Unlock()
	}
	for _, a := range additions {
		q.schedule(a.Message.ID, a.Message.NextAttempt, a.Message.Created)
	}
	return nil
}

// Reschedule makes a pending, unleased message due at when (now for
// `queue retry`). Leased messages are left to their worker.
func (q *Queue) Reschedule(id string, when time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.leased[id] {
		return nil
	}
	if !q.sched.has(id) {
		return fmt.Errorf("%w (or it is finished): %s", ErrNotFound, id)
	}
	q.sched.set(id, when)
	q.wakeLocked()
	return nil
}

// schedule puts a message in the timetable; created, when not zero,
// records its arrival for the oldest-message gauge.
func (q *Queue) schedule(id string, when time.Time, created ...time.Time) {
	q.mu.Lock()
	if len(created) > 0 && !created[0].IsZero() {
		q.arrived[id] = created[0]
	}
	q.sched.set(id, when)
	q.wakeLocked()
	q.mu.Unlock()
}

func (q *Queue) wakeLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Get returns the stored record of a message.
func (q *Queue) Get(id string) (*Message, error) {
	var m Message
	err := q.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(messagesBucket).Get([]byte(id))
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

// Body returns the stored message body, or nil once it was redacted.
func (q *Queue) Body(id string) ([]byte, error) {
	var body []byte
	err := q.db.View(func(tx *bolt.Tx) error {
		v := storedBody(tx, []byte(id))
		// bbolt's slices are valid only inside the transaction.
		body = append([]byte(nil), v...)
		unmapCopied(v)
		return nil
	})
	return body, err
}

// List returns the stored messages, oldest first, that match keep (nil
// keeps all).
func (q *Queue) List(keep func(*Message) bool) ([]*Message, error) {
	var out []*Message
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(messagesBucket).ForEach(func(k, v []byte) error {
			m := new(Message)
			if err := json.Unmarshal(v, m); err != nil {
				return fmt.Errorf("message %s: %w", k, err)
			}
			if keep == nil || keep(m) {
				out = append(out, m)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Stats counts the unfinished messages.
type Stats struct {
	// Pending counts unfinished messages, Leased those being delivered now.
	Pending, Leased int
	// Oldest is when the oldest unfinished message arrived; zero when none.
	Oldest time.Time
}

// Stats reports how many messages are unfinished and the oldest arrival.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := Stats{Pending: q.sched.len() + len(q.leased), Leased: len(q.leased)}
	for _, at := range q.arrived {
		if st.Oldest.IsZero() || at.Before(st.Oldest) {
			st.Oldest = at
		}
	}
	return st
}

// ErrBusy is returned for a message a delivery worker holds right now.
var ErrBusy = errors.New("the message is being delivered right now; try again in a moment")

// Take leases one specific pending message, as Next does for due ones:
// the operator's "bounce this now". The caller must hand it back with
// Update or Release.
func (q *Queue) Take(id string) (*Message, error) {
	q.mu.Lock()
	if q.leased[id] {
		q.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrBusy, id)
	}
	if !q.sched.has(id) {
		q.mu.Unlock()
		if _, err := q.Get(id); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("message %s is finished: nothing left to deliver", id)
	}
	q.sched.remove(id)
	q.leased[id] = true
	q.mu.Unlock()
	m, err := q.Get(id)
	if err != nil {
		q.Release(id, q.now())
		return nil, err
	}
	return m, nil
}

// Delete removes a message and its body for good. A message being
// delivered right now cannot be deleted. RunRetention then wipes the freed
// pages and redacts the notifications that quote the message.
func (q *Queue) Delete(id string) error {
	q.mu.Lock()
	if q.leased[id] {
		q.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrBusy, id)
	}
	q.sched.remove(id)
	delete(q.arrived, id)
	q.mu.Unlock()
	err := q.commit.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(messagesBucket).Get([]byte(id)) == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err := deleteBody(tx, []byte(id)); err != nil {
			return err
		}
		if q.journal != nil {
			if err := q.journal.Removed(tx, id); err != nil {
				return err
			}
		}
		return tx.Bucket(messagesBucket).Delete([]byte(id))
	})
	if err != nil {
		return err
	}
	q.contentFreed()
	q.wakeRetention()
	return nil
}

// Flush makes every pending message that keep selects due again, spread
// over a window (50 ms per message, at most 10 minutes) so that a long
// queue does not hit the upstream all at once. It returns how many.
func (q *Queue) Flush(keep func(*Message) bool) (int, error) {
	msgs, err := q.List(func(m *Message) bool { return m.Pending() && (keep == nil || keep(m)) })
	if err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	window := min(time.Duration(len(msgs))*50*time.Millisecond, 10*time.Minute)
	step := window / time.Duration(len(msgs))
	now := q.now()
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for i, m := range msgs {
		if q.leased[m.ID] || !q.sched.has(m.ID) {
			continue
		}
		q.sched.set(m.ID, now.Add(time.Duration(i)*step))
		n++
	}
	q.wakeLocked()
	return n, nil
}
