package queue

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// unwritable is an addition bbolt refuses (its key is longer than
// bolt.MaxKeySize), so that the whole Update transaction fails inside
// bbolt and is rolled back, as a full disk would make it.
func unwritable() Addition {
	return Addition{Message: &Message{ID: strings.Repeat("x", bolt.MaxKeySize+1)}, Body: []byte("x")}
}

// A failed Update leaves the message leased to its caller: it must not be
// handed out again (the next attempt would start from the stale record on
// disk and send the message again), and a later Update succeeds.
func TestFailedUpdateKeepsTheLease(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), clock)
	defer db.Close()
	m := newMessage("bob@example.net")
	if err := q.Add(m, []byte("x")); err != nil {
		t.Fatal(err)
	}
	leased, err := q.Next(stopAfter(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	leased.Recipients[0].Status = Delivered
	if err := q.Update(leased, unwritable()); err == nil {
		t.Fatal("Update with a key bbolt refuses succeeded")
	}
	if stored, _ := q.Get(m.ID); stored.Recipients[0].Status != Queued {
		t.Fatalf("a failed Update changed the stored record: %+v", stored.Recipients[0])
	}

	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	if _, err := q.Next(stopAfter(100 * time.Millisecond)); err != ErrStopped {
		t.Fatalf("after a failed Update the message was handed out again (err %v); its caller still holds it", err)
	}
	if st := q.Stats(); st.Leased != 1 || st.Pending != 1 {
		t.Fatalf("stats %+v, want the message pending and leased", st)
	}

	if err := q.Update(leased); err != nil {
		t.Fatalf("Update after a failed one: %v", err)
	}
	if stored, _ := q.Get(m.ID); stored.Recipients[0].Status != Delivered || stored.Finished.IsZero() {
		t.Fatalf("stored record after the second Update: %+v", stored)
	}
	if st := q.Stats(); st.Leased != 0 || st.Pending != 0 {
		t.Fatalf("stats %+v, want nothing pending or leased", st)
	}
}
