package capture_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/capture"
	"outbound/queue"
	"outbound/store"
)

// The queue's retention sweep, with the capture store as its journal,
// removes a captured message's bytes when the queued message's content
// goes (retention.content after it was delivered into capture), and the
// capture with the message's stub.
func TestQueueRetentionSweepRedactsCaptures(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	q, err := queue.Open(db, clock)
	if err != nil {
		t.Fatal(err)
	}
	store, err := capture.OpenBolt(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	q.SetJournal(store)
	body := []byte("Subject: secret\r\n\r\nthe content\r\n")
	m := &queue.Message{User: "u@example.com", From: "u@example.com", Recipients: []queue.Recipient{{Addr: "r@example.net", Status: queue.Queued}}}
	if err := q.Add(m, body); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(&capture.Message{ID: m.ID, To: []string{"r@example.net"}, Captured: now, Body: body}); err != nil {
		t.Fatal(err)
	}
	got, _ := q.Get(m.ID)
	got.Recipients[0].Status = queue.Delivered
	if err := q.Update(got); err != nil {
		t.Fatal(err)
	}
	const day = 24 * time.Hour
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	advance(29 * day)
	q.Sweep(30*day, 90*day)
	if c, _ := store.Get(m.ID); c == nil || string(c.Body) != string(body) {
		t.Fatalf("before retention.content: %+v, want the bytes kept", c)
	}
	advance(2 * day)
	if res, err := q.Sweep(30*day, 90*day); err != nil || res.Redacted != 1 {
		t.Fatalf("sweep: %+v, %v", res, err)
	}
	c, err := store.Get(m.ID)
	if err != nil || c.Body != nil || c.Redacted.IsZero() {
		t.Fatalf("after retention.content: %+v, %v; want the bytes gone, the record kept", c, err)
	}
	advance(60 * day)
	q.Sweep(30*day, 90*day)
	if _, err := store.Get(m.ID); err == nil {
		t.Fatal("after retention.stub: the capture is still there")
	}
}
