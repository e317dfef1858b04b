package delivery_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
)

// failingWrites is the real queue whose next Updates fail inside bbolt:
// each failing one carries an extra record bbolt refuses (a key longer than
// bolt.MaxKeySize), so its whole transaction is rolled back, as a full disk
// would make it, and the real queue handles the failure.
type failingWrites struct {
	*queue.Queue
	failures atomic.Int32 // Updates still to fail
	calls    atomic.Int32
}

func (f *failingWrites) UpdateAlso(m *queue.Message, also []queue.TxHook, additions ...queue.Addition) error {
	f.calls.Add(1)
	if f.failures.Add(-1) >= 0 {
		poison := queue.Addition{Message: &queue.Message{ID: strings.Repeat("x", bolt.MaxKeySize+1)}, Body: []byte("x")}
		additions = append(additions[:len(additions):len(additions)], poison)
	}
	return f.Queue.UpdateAlso(m, also, additions...)
}

// An outcome the queue cannot store at first is kept and its write
// retried: the upstream gets the message once, and the outcome of that one
// attempt is what ends up stored.
func TestFailedOutcomeWriteIsRetriedNotTheDelivery(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	q := &failingWrites{Queue: newQueue(t)}
	q.failures.Store(3)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{
		RecordRetry: func(int) time.Duration { return 10 * time.Millisecond },
	})

	m := add(t, q.Queue, body, "bob@example.net")
	got := waitFor(t, q.Queue, m.ID, "finished", finished)
	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Delivered || bob.Attempts != 1 || len(got.Attempts) != 1 {
		t.Errorf("stored record: %s; want bob delivered in one attempt", describe(got))
	}
	if n := q.calls.Load(); n != 4 {
		t.Errorf("%d writes of the outcome, want 4 (3 failed, then the one that succeeded)", n)
	}
	if msgs := fromSender(up.Messages()); len(msgs) != 1 {
		t.Errorf("upstream got %d copies of the message, want 1", len(msgs))
	}
	// The lease is let go just after the record is written: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for st := q.Stats(); st.Pending != 0 || st.Leased != 0; st = q.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("queue stats %+v after the outcome was stored, want nothing pending", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// While the outcome cannot be written the message is neither sent again nor
// given to another worker, and shutdown is not held up by the retries. What
// is on disk is then the record from before the attempt, so after a
// restart the message is due again: delivered at least once, never lost.
func TestOutcomeNeverWrittenIsNotResentUntilRestart(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	db := testutil.OpenDB(t)
	qq, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := &failingWrites{Queue: qq}
	q.failures.Store(1 << 30)
	stop := startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{
		Workers:     4,
		RetryDelay:  func(int) time.Duration { return time.Millisecond },
		RecordRetry: func(int) time.Duration { return 10 * time.Millisecond },
	})

	m := add(t, qq, body, "bob@example.net")
	deadline := time.Now().Add(5 * time.Second)
	for q.calls.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the outcome write was tried %d times in 5s, want it retried", q.calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := qq.Stats(); st.Leased != 1 {
		t.Errorf("queue stats %+v while the write is retried, want the message still leased", st)
	}
	stop()
	if msgs := fromSender(up.Messages()); len(msgs) != 1 {
		t.Errorf("upstream got %d copies while the outcome could not be written, want 1", len(msgs))
	}

	restarted, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := restarted.Next(closedAfter(2 * time.Second))
	if err != nil || again.ID != m.ID {
		t.Fatalf("after a restart the message is not due again (%v)", err)
	}
	if bob := recipient(t, again, "bob@example.net"); bob.Status != queue.Queued || bob.Attempts != 0 {
		t.Errorf("record after restart: %s; want the one from before the attempt", describe(again))
	}
}

// An operator's bounce that cannot be written changes nothing: the error is
// returned, and the message is back in the queue, not stuck with the
// Deliverer, so that the bounce can be tried again.
func TestOperatorBounceThatCannotBeWrittenLeavesTheMessageQueued(t *testing.T) {
	q := &failingWrites{Queue: newQueue(t)}
	q.failures.Store(1)
	d := delivery.New(q, routes{}, delivery.Options{LocalName: "relay.test"})
	m := add(t, q.Queue, body, "bob@example.net")

	if err := d.Bounce(m.ID, "bounced by the operator"); err == nil {
		t.Fatal("Bounce reported success although its write failed")
	}
	if st := q.Stats(); st.Pending != 1 || st.Leased != 0 {
		t.Fatalf("queue stats %+v after a failed bounce, want the message pending and not leased", st)
	}
	if err := d.Bounce(m.ID, "bounced by the operator"); err != nil {
		t.Fatalf("second Bounce: %v", err)
	}
	if bob := recipient(t, waitFor(t, q.Queue, m.ID, "finished", finished), "bob@example.net"); bob.Status != queue.Failed {
		t.Errorf("bob: %s after the bounce, want failed", bob.Status)
	}
}

func closedAfter(d time.Duration) chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}
