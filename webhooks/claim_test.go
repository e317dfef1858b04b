package webhooks

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/smarthost"
	"outbound/store"
)

// sharedView is a node's view of a store other nodes use too: a bbolt
// veneer that says it is shared, as a PostgreSQL store does.
type sharedView struct{ store.DB }

func (sharedView) Shared() bool { return true }

// overlapReceiver takes every request after holding it a moment (so that
// a second worker sending the same delivery would overlap it) and counts
// how often each webhook-id came and whether two came at once.
type overlapReceiver struct {
	mu       sync.Mutex
	inFlight map[string]int
	sent     map[string]int
	overlaps []string
}

func (rc *overlapReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	rc.inFlight[id]++
	rc.sent[id]++
	if rc.inFlight[id] > 1 {
		rc.overlaps = append(rc.overlaps, id)
	}
	rc.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // widens the window; not a synchronisation
	rc.mu.Lock()
	rc.inFlight[id]--
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Two nodes' workers over one shared outbox (two views of one bbolt file,
// each with its own webhooks.Bolt, as two nodes have): every delivery is
// sent once, by one of them, never by both at once.
func TestTwoNodesWorkersSendEachDeliveryOnce(t *testing.T) {
	rc := &overlapReceiver{inFlight: map[string]int{}, sent: map[string]int{}}
	srv, pool := tlsServer(t, rc)
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "t.db"), 0o600, nil)
	must(t, err)
	t.Cleanup(func() { db.Close() })
	hosts, err := smarthost.Open(sharedView{store.Bolt(db)}, filepath.Join(dir, "secrets.key"))
	must(t, err)
	policy := Policy{AllowPrivate: true}
	type node struct {
		log *events.Bolt
		wh  *Bolt
	}
	var nodes []node
	for range 2 {
		view := sharedView{store.Bolt(db)}
		log, err := events.OpenBolt(view, nil)
		must(t, err)
		wh, err := OpenBolt(view, policy, hosts)
		must(t, err)
		log.SetOutbox(wh)
		nodes = append(nodes, node{log, wh})
	}
	for i := range 3 {
		_, _, err := nodes[i%2].wh.Register(context.Background(), "alice", fmt.Sprintf("%s/hooks/%d", srv.URL, i), nil)
		must(t, err)
	}
	const n = 5
	now := time.Now()
	for i := range n {
		must(t, nodes[i%2].log.Record(events.Event{At: now, Kind: events.Relayed, Message: "m1", User: "alice",
			Recipient: fmt.Sprintf("r%d@example.com", i)}))
	}
	// Both workers start with every delivery due.
	var wg sync.WaitGroup
	quit := make(chan struct{})
	for _, nd := range nodes {
		w := NewWorker(nd.wh, Options{Policy: policy, Events: nd.log, RootCAs: pool, Backoff: fast})
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(quit) }()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(quit)
			wg.Wait()
		}
	}
	t.Cleanup(stop)
	waitFor(t, "an empty outbox", func() bool {
		l, err := nodes[0].wh.List("alice")
		if err != nil || len(l) != 3 {
			return false
		}
		for _, ep := range l {
			if ep.Pending > 0 {
				return false
			}
		}
		return true
	})
	stop()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.overlaps) > 0 {
		t.Errorf("sent by two workers at once: %v", rc.overlaps)
	}
	if len(rc.sent) != 3*n {
		t.Errorf("%d deliveries sent, want %d", len(rc.sent), 3*n)
	}
	for id, times := range rc.sent {
		if times != 1 {
			t.Errorf("%s sent %d times, want once", id, times)
		}
	}
}
