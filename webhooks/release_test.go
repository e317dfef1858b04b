package webhooks

import (
	"context"
	"io"
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

// A worker stopped while it sends gives its claim back: another node's
// worker sends the delivery at once, not after the lease.
func TestStoppedWorkersClaimGoesToAnotherNode(t *testing.T) {
	arrived, stoppedA := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var taken []string
	first := true
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if first {
			first = false
			mu.Unlock()
			close(arrived)
			// Held until the worker has given up on it (and stopped).
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-stoppedA:
			}
			return
		}
		taken = append(taken, r.Header.Get("webhook-id"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "t.db"), 0o600, nil)
	must(t, err)
	t.Cleanup(func() { db.Close() })
	hosts, err := smarthost.Open(sharedView{store.Bolt(db)}, filepath.Join(dir, "secrets.key"))
	must(t, err)
	policy := Policy{AllowPrivate: true}
	log, err := events.OpenBolt(sharedView{store.Bolt(db)}, nil)
	must(t, err)
	whA, err := OpenBolt(sharedView{store.Bolt(db)}, policy, hosts)
	must(t, err)
	whB, err := OpenBolt(sharedView{store.Bolt(db)}, policy, hosts)
	must(t, err)
	log.SetOutbox(whA)
	_, _, err = whA.Register(context.Background(), "alice", srv.URL+"/hooks", nil)
	must(t, err)
	must(t, log.Record(events.Event{At: time.Now(), Kind: events.Relayed, Message: "m1", User: "alice", Recipient: "r@example.com"}))

	run := func(wh *Bolt) (stop func()) {
		w := NewWorker(wh, Options{Policy: policy, Events: log, RootCAs: pool, Backoff: fast})
		quit, done := make(chan struct{}), make(chan struct{})
		go func() { w.Run(quit); close(done) }()
		stop = sync.OnceFunc(func() { close(quit); <-done })
		t.Cleanup(stop)
		return stop
	}
	stopA := run(whA)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("node a's worker did not send")
	}
	stopA()
	close(stoppedA)
	run(whB)
	waitFor(t, "node b's worker to send the delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(taken) == 1
	})
}
