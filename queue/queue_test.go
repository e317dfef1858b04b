package queue

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openAt(t *testing.T, path string, now func() time.Time) (*Queue, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.MaxBatchDelay = time.Millisecond
	q, err := Open(db, now)
	if err != nil {
		t.Fatal(err)
	}
	return q, db
}

func newMessage(rcpts ...string) *Message {
	m := &Message{User: "alice@example.com", From: "alice@example.com"}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, Recipient{Addr: r, Status: Queued})
	}
	return m
}

func stopAfter(d time.Duration) chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}

func TestAddedMessageSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, db := openAt(t, path, nil)
	m := newMessage("bob@example.net")
	body := []byte("Subject: x\r\n\r\nhello\r\n")
	if err := q.Add(m, body); err != nil {
		t.Fatal(err)
	}
	db.Close()

	q2, db2 := openAt(t, path, nil)
	defer db2.Close()
	got, err := q2.Next(stopAfter(2 * time.Second))
	if err != nil {
		t.Fatalf("message not due after reopen: %v", err)
	}
	if got.ID != m.ID || got.Recipients[0].Addr != "bob@example.net" {
		t.Fatalf("got %+v", got)
	}
	b, _ := q2.Body(got.ID)
	if !bytes.Equal(b, body) {
		t.Fatalf("body %q, want %q", b, body)
	}
}

func TestFinishedMessageIsNotRescheduledOnReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, db := openAt(t, path, nil)
	m := newMessage("bob@example.net")
	q.Add(m, []byte("x"))
	leased, _ := q.Next(stopAfter(time.Second))
	leased.Recipients[0].Status = Delivered
	if err := q.Update(leased); err != nil {
		t.Fatal(err)
	}
	db.Close()
	q2, db2 := openAt(t, path, nil)
	defer db2.Close()
	if _, err := q2.Next(stopAfter(100 * time.Millisecond)); err != ErrStopped {
		t.Fatalf("a delivered message came back: %v", err)
	}
	got, _ := q2.Get(m.ID)
	if got.Finished.IsZero() || !got.NextAttempt.IsZero() {
		t.Fatalf("finished message record: %+v", got)
	}
}

func TestNextWaitsUntilDue(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	defer db.Close()
	m := newMessage("bob@example.net")
	m.NextAttempt = time.Now().Add(150 * time.Millisecond)
	q.Add(m, []byte("x"))
	start := time.Now()
	got, err := q.Next(stopAfter(2 * time.Second))
	if err != nil || got.ID != m.ID {
		t.Fatalf("Next: %v %v", got, err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("message handed out after %s, before it was due", waited)
	}
}

func TestLeasedMessageGoesToOneWorkerOnly(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	defer db.Close()
	const n = 50
	for i := 0; i < n; i++ {
		q.Add(newMessage(fmt.Sprintf("r%d@example.net", i)), []byte("x"))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	done := stopAfter(300 * time.Millisecond)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := q.Next(done)
				if err != nil {
					return
				}
				mu.Lock()
				seen[m.ID]++
				mu.Unlock()
				m.Recipients[0].Status = Delivered
				q.Update(m)
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d messages handed out, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("message %s handed out %d times", id, c)
		}
	}
}

func TestUpdateReschedulesPendingRecipients(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	defer db.Close()
	q.Add(newMessage("a@example.net", "b@example.net"), []byte("x"))
	m, _ := q.Next(stopAfter(time.Second))
	m.Recipients[0].Status = Delivered
	m.NextAttempt = time.Now().Add(50 * time.Millisecond)
	if err := q.Update(m); err != nil {
		t.Fatal(err)
	}
	again, err := q.Next(stopAfter(2 * time.Second))
	if err != nil || again.ID != m.ID {
		t.Fatalf("pending recipient not retried: %v", err)
	}
	if again.Recipients[0].Status != Delivered || again.Recipients[1].Status != Queued {
		t.Fatalf("statuses not persisted: %+v", again.Recipients)
	}
}

func TestRescheduleMakesMessageDueNow(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	defer db.Close()
	m := newMessage("a@example.net")
	m.NextAttempt = time.Now().Add(time.Hour)
	q.Add(m, []byte("x"))
	if err := q.Reschedule(m.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Next(stopAfter(time.Second)); err != nil {
		t.Fatalf("rescheduled message not due: %v", err)
	}
	if err := q.Reschedule("nope", time.Now()); err == nil {
		t.Fatal("rescheduling an unknown message succeeded")
	}
}

func TestAttemptHistoryIsBounded(t *testing.T) {
	m := newMessage("a@example.net")
	for i := 0; i < 50; i++ {
		m.RecordAttempt(Attempt{Result: fmt.Sprint(i)})
	}
	if len(m.Attempts) != maxAttemptsKept || m.Attempts[len(m.Attempts)-1].Result != "49" {
		t.Fatalf("history: %d entries, last %q", len(m.Attempts), m.Attempts[len(m.Attempts)-1].Result)
	}
}

// BenchmarkAdd measures durable adds from concurrent submitters: with group
// commit, writers share fsyncs.
func BenchmarkAdd(b *testing.B) {
	for _, writers := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "q.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.MaxBatchDelay = time.Millisecond
			q, _ := Open(db, nil)
			body := bytes.Repeat([]byte("x"), 4096)
			b.SetParallelism(writers)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := q.Add(newMessage("bob@example.net"), body); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}

// Add commits alsoWrite in the message's own transaction: both are stored,
// or, when alsoWrite fails, neither is and the message is not scheduled.
func TestAddCommitsAlsoWriteWithTheMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, db := openAt(t, path, nil)
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("extra")); return err })
	mark := func(tx *bolt.Tx) error { return tx.Bucket([]byte("extra")).Put([]byte("k"), []byte("v")) }
	ok := newMessage("bob@example.net")
	if err := q.Add(ok, []byte("Subject: a\r\n\r\nx\r\n"), mark); err != nil {
		t.Fatal(err)
	}
	failing := newMessage("carol@example.net")
	boom := fmt.Errorf("boom")
	if err := q.Add(failing, []byte("Subject: b\r\n\r\ny\r\n"), func(*bolt.Tx) error { return boom }); err == nil {
		t.Fatal("Add succeeded although its alsoWrite failed")
	}
	db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("extra")).Get([]byte("k")) == nil {
			t.Error("alsoWrite of the stored message is missing")
		}
		return nil
	})
	if _, err := q.Get(failing.ID); err == nil {
		t.Error("the message whose alsoWrite failed was stored")
	}
	got, err := q.Next(stopAfter(time.Second))
	if err != nil || got.ID != ok.ID {
		t.Fatalf("Next = %v, %v; want the stored message", got, err)
	}
	if _, err := q.Next(stopAfter(200 * time.Millisecond)); err == nil {
		t.Error("the refused message was scheduled")
	}
}

// A large body read through Body has its mapped pages dropped after the
// copy (unmapCopied); that must cost nothing but a page fault: it reads
// back whole, again and again, also after the file is reopened.
func TestLargeBodyReadsBackAfterItsPagesAreDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, db := openAt(t, path, nil)
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 1<<16) // ~1.1 MiB
	m := newMessage("bob@example.net")
	if err := q.Add(m, body); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		got, err := q.Body(m.ID)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read %d: %d bytes (want %d), err %v", i, len(got), len(body), err)
		}
	}
	db.Close()
	q2, db2 := openAt(t, path, nil)
	defer db2.Close()
	if got, err := q2.Body(m.ID); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after reopen: %d bytes, err %v", len(got), err)
	}
}

// A body is written once: appending a message does not rewrite the bodies
// stored before it (bbolt kept up to four large values in one leaf and
// copied them all on every append). Measured as what each Add wrote
// (bbolt's PageAlloc: bytes of pages written), which stays near the new
// body's own size.
func TestAddWritesOnlyTheNewBody(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	defer db.Close()
	body := bytes.Repeat([]byte("x"), 256<<10)
	for i := 0; i < 4; i++ { // neighbours to rewrite, were they shared
		if err := q.Add(newMessage("bob@example.net"), body); err != nil {
			t.Fatal(err)
		}
	}
	before := db.Stats().TxStats
	const n = 8
	for i := 0; i < n; i++ {
		if err := q.Add(newMessage("bob@example.net"), body); err != nil {
			t.Fatal(err)
		}
	}
	after := db.Stats().TxStats
	diff := after.Sub(&before)
	perAdd := int(diff.GetPageAlloc()) / n // bytes of pages written per Add
	if perAdd > len(body)+len(body)/4 {
		t.Fatalf("%d KiB of pages written per 256 KiB Add: the bodies before it were written again", perAdd>>10)
	}
}

// Bodies stored by earlier versions as plain values of the bodies bucket
// (as small bodies still are) are read and deleted like those in buckets
// of their own.
func TestBodiesOfTheEarlierLayoutStillWork(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	defer db.Close()
	large := string(bytes.Repeat([]byte("own bucket "), ownBucketFrom/10))
	m := newMessage("bob@example.net")
	if err := q.Add(m, []byte(large)); err != nil {
		t.Fatal(err)
	}
	old := newMessage("carol@example.net")
	if err := q.Add(old, []byte("placeholder")); err != nil {
		t.Fatal(err)
	}
	// A large body the way earlier versions stored it: a plain value.
	err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bodiesBucket).Put([]byte(old.ID), []byte("old layout"+large))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bodiesBucket).Bucket([]byte(m.ID)) == nil {
			t.Error("a large body is not in a bucket of its own")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{m.ID: large, old.ID: "old layout" + large} {
		if got, err := q.Body(id); err != nil || string(got) != want {
			t.Fatalf("Body(%s) = %d bytes, %v; want %d", id, len(got), err, len(want))
		}
	}
	db.Update(func(tx *bolt.Tx) error {
		for _, id := range []string{m.ID, old.ID} {
			if err := deleteBody(tx, []byte(id)); err != nil {
				t.Fatalf("deleteBody(%s): %v", id, err)
			}
			if storedBody(tx, []byte(id)) != nil {
				t.Fatalf("body of %s still stored after deleteBody", id)
			}
		}
		if err := deleteBody(tx, []byte("no-such-id")); err != nil {
			t.Fatalf("deleteBody of a missing body: %v", err)
		}
		return nil
	})
}
