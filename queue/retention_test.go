package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// finishedMessage adds a message and marks it delivered at the clock's now.
func finishedMessage(t *testing.T, q *Queue, body []byte) *Message {
	t.Helper()
	m := newMessage("bob@example.net")
	if err := q.Add(m, body); err != nil {
		t.Fatal(err)
	}
	got, _ := q.Get(m.ID)
	got.Recipients[0].Status = Delivered
	got.Recipients[0].Reply = "250 2.0.0 Ok: queued as ABC"
	if err := q.Update(got); err != nil {
		t.Fatal(err)
	}
	return got
}

const day = 24 * time.Hour

func TestRedactedContentIsGoneFromTheFile(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "q.db")
	q, db := openAt(t, path, clock.Now)
	secret := []byte("the-launch-code-is-" + strings.Repeat("0451", 16))
	body := append([]byte("Subject: plans\r\n\r\n"), bytes.Repeat(append(secret, '\r', '\n'), 200)...)
	m := finishedMessage(t, q, body)
	// Some unrelated traffic, as in a live queue.
	for i := 0; i < 20; i++ {
		q.Add(newMessage("x@example.net"), bytes.Repeat([]byte("filler "), 500))
	}
	db.Sync()
	if raw, _ := os.ReadFile(path); !bytes.Contains(raw, secret) {
		t.Fatal("test is broken: the content is not in the file before redaction")
	}

	clock.Advance(29 * day)
	if res, _ := q.Sweep(30*day, 90*day); res.Redacted != 0 {
		t.Fatal("redacted before retention.content")
	}
	clock.Advance(2 * day)
	res, err := q.Sweep(30*day, 90*day)
	if err != nil {
		t.Fatal(err)
	}
	if res.Redacted != 1 || !res.Wiped {
		t.Fatalf("sweep result %+v, want 1 redacted and wiped", res)
	}
	stub, err := q.Get(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stub.Redacted.IsZero() || stub.Recipients[0].Reply != "250 2.0.0 Ok: queued as ABC" || stub.From != "alice@example.com" {
		t.Fatalf("stub lost what it must keep: %+v", stub)
	}
	if b, _ := q.Body(m.ID); len(b) != 0 {
		t.Fatal("body still readable after redaction")
	}
	db.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("redacted content is still in the bbolt file's bytes")
	}
}

func TestSweepIsIdempotentAndDeletesStubsLater(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), clock.Now)
	defer db.Close()
	m := finishedMessage(t, q, []byte("Subject: x\r\n\r\nbody\r\n"))
	pending := newMessage("slow@example.net")
	q.Add(pending, []byte("pending body"))

	clock.Advance(31 * day)
	first, _ := q.Sweep(30*day, 90*day)
	second, _ := q.Sweep(30*day, 90*day)
	if first.Redacted != 1 || second.Redacted != 0 || second.Deleted != 0 {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	if b, _ := q.Body(pending.ID); string(b) != "pending body" {
		t.Fatal("a pending message lost its body")
	}
	clock.Advance(60 * day)
	res, _ := q.Sweep(30*day, 90*day)
	if res.Deleted != 1 {
		t.Fatalf("stub not deleted after retention.stub: %+v", res)
	}
	if _, err := q.Get(m.ID); err == nil {
		t.Fatal("stub still there")
	}
	if _, err := q.Get(pending.ID); err != nil {
		t.Fatal("a pending message was deleted")
	}
}

func TestWipeWaitsForOpenReaders(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	// A large initial mapping: a write that had to grow the mmap would wait
	// for the reader this test holds open, forever.
	db, err := bolt.Open(filepath.Join(t.TempDir(), "q.db"), 0o600, &bolt.Options{InitialMmapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	finishedMessage(t, q, []byte("Subject: x\r\n\r\nbody\r\n"))
	clock.Advance(31 * day)
	tx, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.Sweep(30*day, 90*day)
	tx.Rollback()
	if err != nil || res.Redacted != 1 || res.Wiped {
		t.Fatalf("with a reader open: %+v %v; want redacted but not wiped", res, err)
	}
	if res, _ := q.Sweep(30*day, 90*day); !res.Wiped {
		t.Fatalf("the next sweep did not do the postponed wipe: %+v", res)
	}
}

func TestTakeDeleteAndFlush(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	defer db.Close()
	later := time.Now().Add(time.Hour)
	var ids []string
	for i := 0; i < 3; i++ {
		m := newMessage("a@example.net")
		m.NextAttempt = later
		q.Add(m, []byte("x"))
		ids = append(ids, m.ID)
	}
	m, err := q.Take(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Take(ids[0]); err == nil {
		t.Fatal("took a message twice")
	}
	if err := q.Delete(ids[0]); err == nil {
		t.Fatal("deleted a leased message")
	}
	q.Release(m.ID, later)
	if err := q.Delete(ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ids[0]); err == nil {
		t.Fatal("deleted message still there")
	}
	n, err := q.Flush(nil)
	if err != nil || n != 2 {
		t.Fatalf("flushed %d, %v; want 2", n, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := q.Next(stopAfter(2 * time.Second)); err != nil {
			t.Fatalf("flushed message %d not due: %v", i, err)
		}
	}
}
