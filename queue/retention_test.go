package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
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

// A reader that began before the redaction may still read the freed
// pages: the wipe leaves them alone (the reader still reads the old body
// intact) and is owed until that reader ends.
func TestWipeWaitsForOpenReaders(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := openBigMap(t)
	q, err := Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: x\r\n\r\n" + strings.Repeat("old body\r\n", 1000))
	m := finishedMessage(t, q, body)
	clock.Advance(31 * day)
	tx, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.Sweep(30*day, 90*day)
	if !bytes.Equal(storedBody(tx, []byte(m.ID)), body) {
		t.Error("the wipe overwrote pages a reader that began before it still reads")
	}
	tx.Rollback()
	if err != nil || res.Redacted != 1 || res.Wiped {
		t.Fatalf("with a reader open: %+v %v; want redacted but not wiped", res, err)
	}
	if res, _ := q.Sweep(30*day, 90*day); !res.Wiped {
		t.Fatalf("the next sweep did not do the postponed wipe: %+v", res)
	}
}

// openBigMap opens a bbolt file with a large initial mapping: a write that
// had to grow the mapping would wait for the readers a test holds open.
func openBigMap(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "q.db"), 0o600, &bolt.Options{InitialMmapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Under a steady load of reads (at every moment some read transaction is
// open) and submissions, the wipe still happens at once: readers that
// begin after it started do not hold it up. The readers check every body
// they read, so a wipe that zeroed a page one of them could see fails too.
func TestWipeHappensUnderContinuousReads(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := openBigMap(t)
	q, err := Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("the-launch-code-is-" + strings.Repeat("0451", 16))
	body := append([]byte("Subject: plans\r\n\r\n"), bytes.Repeat(append(secret, '\r', '\n'), 200)...)
	filler := bytes.Repeat([]byte("filler "), 500)
	finishedMessage(t, q, body)
	for range 20 {
		if err := q.Add(newMessage("x@example.net"), filler); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(31 * day)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // readers: the next one begins before the last one ends
		defer wg.Done()
		read := func() *bolt.Tx {
			tx, err := db.Begin(false)
			if err != nil {
				t.Error(err)
				return nil
			}
			tx.Bucket(bodiesBucket).ForEach(func(k, _ []byte) error {
				if v := storedBody(tx, k); !bytes.Equal(v, filler) && !bytes.Equal(v, body) {
					t.Errorf("a reader read a damaged body for %s (%d bytes)", k, len(v))
				}
				return nil
			})
			return tx
		}
		last := read()
		for {
			select {
			case <-stop:
				last.Rollback()
				return
			default:
			}
			next := read()
			last.Rollback()
			last = next
		}
	}()
	go func() { // submissions
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := q.Add(newMessage("x@example.net"), filler); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	res, err := q.Sweep(30*day, 90*day)
	// A wipe that one attempt could not finish (on a very slow machine) is
	// owed and tried again by the next sweep; reads that never pause must
	// not keep it from ever happening.
	for try := 0; err == nil && !res.Wiped && try < 5; try++ {
		var again SweepResult
		again, err = q.Sweep(30*day, 90*day)
		res.Redacted += again.Redacted
		res.Wiped = again.Wiped
	}
	raw, _ := os.ReadFile(db.Path())
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Redacted != 1 || !res.Wiped {
		t.Fatalf("sweeps under continuous reads: %+v; want 1 redacted and wiped", res)
	}
	if bytes.Contains(raw, secret) {
		t.Fatal("redacted content is still in the bbolt file's bytes")
	}
}

// The sweep changes records in bounded write transactions, so submissions
// are not held up for the whole sweep.
func TestSweepWritesInBoundedBatches(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), clock.Now)
	defer db.Close()
	const n = 3 * sweepBatch
	err := db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			m := newMessage("bob@example.net")
			m.ID = fmt.Sprintf("%020d", i)
			m.Recipients[0].Status = Delivered
			m.Created, m.Finished = clock.Now(), clock.Now()
			meta, _ := json.Marshal(m)
			if err := putNew(tx, m.ID, meta, []byte("body")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * day)
	before := lastTxID(t, db)
	res, err := q.Sweep(30*day, 90*day)
	if err != nil || res.Redacted != n {
		t.Fatalf("%+v %v; want %d redacted", res, err, n)
	}
	// Each committed write transaction takes the next id; the wipe takes
	// one of its own.
	if commits := lastTxID(t, db) - before; commits < n/sweepBatch+1 {
		t.Fatalf("%d messages redacted in %d commits (wipe included); want at most %d per commit", n, commits, sweepBatch)
	}
}

func lastTxID(t *testing.T, db *bolt.DB) int {
	t.Helper()
	tx, err := db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	return tx.ID()
}

// `queue delete` gets the message's content out of the file soon, without
// waiting for the hourly sweep.
func TestDeleteWipesTheMessageFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, db := openAt(t, path, nil)
	defer db.Close()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		q.RunRetention(done, Retention{Content: 30 * day, Stub: 90 * day}, slog.New(slog.DiscardHandler))
		close(stopped)
	}()
	defer func() { close(done); <-stopped }()

	secret := []byte("the-launch-code-is-" + strings.Repeat("0451", 16))
	m := newMessage("bob@example.net")
	m.NextAttempt = time.Now().Add(time.Hour)
	if err := q.Add(m, bytes.Repeat(append(secret, '\r', '\n'), 200)); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(m.ID); err != nil {
		t.Fatal(err)
	}
	// A generous bound that only a wipe left for the hourly sweep reaches.
	for give := time.Now().Add(20 * time.Second); ; {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, secret) {
			return
		}
		if time.Now().After(give) {
			t.Fatal("the deleted message's content is still in the bbolt file")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A notification that quotes a message (RET=FULL or its headers) loses
// its copy when the message loses its content, even though it finished
// later: it keeps the original's clock instead of starting its own.
func TestNotificationExpiresWithTheMessageItQuotes(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), clock.Now)
	defer db.Close()
	orig, dsn := bounced(t, q, clock)
	if dsn.ContentOf != orig.ID {
		t.Fatalf("the notification's ContentOf is %q, want the original's ID", dsn.ContentOf)
	}
	// The notification took three days to deliver.
	clock.Advance(3 * day)
	dsn.Recipients[0].Status = Delivered
	if err := q.Update(dsn); err != nil {
		t.Fatal(err)
	}

	clock.Advance(27*day + time.Minute) // the original's content is due
	res, err := q.Sweep(30*day, 90*day)
	if err != nil {
		t.Fatal(err)
	}
	if res.Redacted != 2 {
		t.Fatalf("redacted %d, want the original and the notification quoting it", res.Redacted)
	}
	if b, _ := q.Body(dsn.ID); len(b) != 0 {
		t.Fatal("the notification still holds a copy of the redacted message")
	}
}

// A notification quoting a message the operator deleted loses its copy at
// the next sweep.
func TestNotificationOfADeletedMessageIsRedacted(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), clock.Now)
	defer db.Close()
	orig, dsn := bounced(t, q, clock)
	dsn.Recipients[0].Status = Delivered
	if err := q.Update(dsn); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(orig.ID); err != nil {
		t.Fatal(err)
	}
	res, err := q.Sweep(30*day, 90*day)
	if err != nil || res.Redacted != 1 {
		t.Fatalf("%+v %v; want the notification redacted", res, err)
	}
	if b, _ := q.Body(dsn.ID); len(b) != 0 {
		t.Fatal("the notification still holds a copy of the deleted message")
	}
}

// bounced queues a message with RET=FULL, fails it, and queues the
// notification returning it, as delivery does; it returns both, leased.
func bounced(t *testing.T, q *Queue, clock *fakeClock) (orig, dsn *Message) {
	t.Helper()
	body := []byte("Subject: plans\r\n\r\nthe launch code\r\n")
	orig = newMessage("bob@example.net")
	orig.Ret = "FULL"
	if err := q.Add(orig, body); err != nil {
		t.Fatal(err)
	}
	leased, err := q.Next(stopAfter(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	leased.Recipients[0].Status = Failed
	notice := &Message{Recipients: []Recipient{{Addr: orig.From, Status: Queued}}}
	dsnBody := append([]byte("Subject: Undelivered Mail Returned to Sender\r\n\r\n"), body...)
	if err := q.Update(leased, Addition{Message: notice, Body: dsnBody}); err != nil {
		t.Fatal(err)
	}
	if dsn, err = q.Next(stopAfter(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return leased, dsn
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
