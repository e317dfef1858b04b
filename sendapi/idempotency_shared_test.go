package sendapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	bolt "go.etcd.io/bbolt"

	"outbound/auth"
	"outbound/internal/pgtest"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/relay"
	"outbound/store"
)

// The Idempotency-Key on several nodes ("a", "b") sharing one PostgreSQL
// store, each with its own bbolt file, as in a cluster behind a load
// balancer. The relay is a fake Submitter that writes the answer into the
// node's file in a transaction of its own, as the queue would.

const clusterKey = "obk_cluster_test_key"

// oneKey knows one API key, alice's.
type oneKey struct{}

func (oneKey) Verify(key string) (*auth.APIKey, error) {
	if key != clusterKey {
		return nil, auth.ErrBadCredentials
	}
	return &auth.APIKey{User: alice, Prefix: "obk_clus"}, nil
}

// fakeRelay "queues" a message by committing the request's AlsoWrite in
// the node's bbolt file.
type fakeRelay struct {
	db *bolt.DB
	// entered gets a value when a Submit waits at a gate (hold).
	entered chan struct{}
	// refuse makes Submit refuse (as a relay refusing the sender).
	refuse atomic.Bool

	mu     sync.Mutex
	gate   chan struct{}
	queued []string
}

// hold makes the next Submits wait until the returned func is called (at
// the latest when t ends, so that a failed test does not hang in closing
// the server).
func (f *fakeRelay) hold(t *testing.T) (open func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.gate = gate
	var once sync.Once
	open = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	return open
}

func (f *fakeRelay) Submit(sub relay.Submission) (string, *relay.Refusal) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		f.entered <- struct{}{}
		<-gate
	}
	if f.refuse.Load() {
		return "", &relay.Refusal{SMTPError: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "not your address"}}
	}
	id := queue.NewID(time.Now())
	err := f.db.Update(func(tx *bolt.Tx) error {
		if sub.AlsoWrite == nil {
			return nil
		}
		return sub.AlsoWrite(id)(tx)
	})
	if err != nil {
		return "", &relay.Refusal{SMTPError: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: err.Error()}}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued = append(f.queued, id)
	return id, nil
}

func (f *fakeRelay) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queued)
}

// flakyDB is a shared store that can be made unreachable.
type flakyDB struct {
	store.DB
	down atomic.Bool
}

func (d *flakyDB) Update(fn func(store.Tx) error) error {
	if d.down.Load() {
		return fmt.Errorf("%w: test: connection refused", store.ErrUnavailable)
	}
	return d.DB.Update(fn)
}

func (d *flakyDB) View(fn func(store.Tx) error) error {
	if d.down.Load() {
		return fmt.Errorf("%w: test: connection refused", store.ErrUnavailable)
	}
	return d.DB.View(fn)
}

type clusterNode struct {
	name   string
	h      *Handler
	srv    *httptest.Server
	relay  *fakeRelay
	shared *flakyDB
	logs   *testutil.SyncBuffer
}

// nodeOptions change a node from the default: its clock.
type nodeOptions struct {
	now func() time.Time
}

// sharedDSN is a database of its own for t on the shared test cluster.
func sharedDSN(t *testing.T) string {
	t.Helper()
	return pgtest.Shared(t).NewDatabase(t)
}

// startNode runs node name's send API on its own bbolt file and the shared
// PostgreSQL database dsn (its own connection, as another process has).
func startNode(t *testing.T, dsn, name string, o nodeOptions) *clusterNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	pg, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: name, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	db := testutil.OpenDB(t)
	f := &fakeRelay{db: db, entered: make(chan struct{}, 1)}
	shared := &flakyDB{DB: pg}
	h, err := New(Options{Keys: oneKey{}, Relay: f, DB: store.Bolt(db), SharedDB: shared, Node: name,
		Hostname: "relay.test", MaxMessageBytes: 256 << 10, Logger: log, Now: o.now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &clusterNode{name: name, h: h, srv: srv, relay: f, shared: shared, logs: logs}
}

type reply struct {
	status   int
	replayed bool
	body     map[string]any
}

func (r reply) String() string { return fmt.Sprintf("%d replayed=%v %v", r.status, r.replayed, r.body) }

// post sends body with Idempotency-Key idem to the node. It may run on any
// goroutine: it reports failures in the reply (status 0).
func (n *clusterNode) post(body any, idem string) reply {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", n.srv.URL+"/v1/messages", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+clusterKey)
	req.Header.Set("Idempotency-Key", idem)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{body: map[string]any{"transport error": err.Error()}}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		out.body = map[string]any{"not JSON": string(raw)}
	}
	return out
}

func (r reply) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r reply) message() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// sharedRecord reads the key's record in the shared store (nil: none).
func sharedRecord(t *testing.T, db store.DB, key string) *claim {
	t.Helper()
	var c *claim
	err := db.View(func(tx store.Tx) error {
		if b := tx.Bucket(claimsBucket); b != nil {
			c = decodeClaim(b.Get(idemKey(alice, key)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wait waits for a gated relay's Submit to be entered.
func (n *clusterNode) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-n.relay.entered:
	case <-time.After(time.Minute):
		t.Fatalf("node %s: no request reached the relay", n.name)
	}
}

func TestClusterRetryOnAnotherNodeReplaysTheFirstAnswer(t *testing.T) {
	dsn := sharedDSN(t)
	a, b := startNode(t, dsn, "a", nodeOptions{}), startNode(t, dsn, "b", nodeOptions{})
	first := a.post(simple, "order-42")
	if first.status != 202 || first.replayed {
		t.Fatalf("node a: %v", first)
	}
	retry := b.post(simple, "order-42")
	if retry.status != 202 || !retry.replayed || retry.body["id"] != first.body["id"] || retry.body["message_id"] != first.body["message_id"] {
		t.Fatalf("retry on node b: %v, first answer %v", retry, first)
	}
	if na, nb := a.relay.count(), b.relay.count(); na != 1 || nb != 0 {
		t.Fatalf("queued %d on a and %d on b, want 1 and 0", na, nb)
	}
	// The record in the shared store is the answer, by node a.
	if c := sharedRecord(t, b.shared, "order-42"); c == nil || c.State != stateAnswered || c.Node != "a" {
		t.Fatalf("shared record %+v", c)
	}
}

func TestClusterRequestInFlightOnAnotherNodeIs409(t *testing.T) {
	dsn := sharedDSN(t)
	a, b := startNode(t, dsn, "a", nodeOptions{}), startNode(t, dsn, "b", nodeOptions{})
	open := a.relay.hold(t)
	done := make(chan reply, 1)
	go func() { done <- a.post(simple, "order-7") }()
	a.waitEntered(t)
	busy := b.post(simple, "order-7")
	if busy.status != 409 || busy.code() != "conflict" ||
		busy.message() != "a request with this Idempotency-Key is being processed; retry once it has been answered" {
		t.Fatalf("node b while a processes the key: %v", busy)
	}
	open()
	first := <-done
	if first.status != 202 {
		t.Fatalf("node a: %v", first)
	}
	if again := b.post(simple, "order-7"); again.status != 202 || !again.replayed || again.body["id"] != first.body["id"] {
		t.Fatalf("node b after a answered: %v", again)
	}
	if na, nb := a.relay.count(), b.relay.count(); na != 1 || nb != 0 {
		t.Fatalf("queued %d on a and %d on b, want 1 and 0", na, nb)
	}
}

// Requests with one key sent to both nodes at once: exactly one message,
// and the other request is told to wait (409) or given the same answer.
func TestClusterRequestsAtOnceQueueOnce(t *testing.T) {
	dsn := sharedDSN(t)
	a, b := startNode(t, dsn, "a", nodeOptions{}), startNode(t, dsn, "b", nodeOptions{})
	const keys = 20
	for i := range keys {
		key := fmt.Sprintf("race-%d", i)
		start := make(chan struct{})
		var wg sync.WaitGroup
		replies := make([]reply, 2)
		for j, n := range []*clusterNode{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				replies[j] = n.post(simple, key)
			}()
		}
		close(start)
		wg.Wait()
		var ids []any
		for _, r := range replies {
			switch {
			case r.status == 202:
				ids = append(ids, r.body["id"])
			case r.status == 409 && r.code() == "conflict":
			default:
				t.Fatalf("key %s: %v", key, r)
			}
		}
		if len(ids) == 0 || len(ids) == 2 && ids[0] != ids[1] {
			t.Fatalf("key %s: answers %v and %v", key, replies[0], replies[1])
		}
	}
	if n := a.relay.count() + b.relay.count(); n != keys {
		t.Fatalf("%d messages queued for %d keys", n, keys)
	}
}

func TestClusterKeyReusedOnAnotherNodeIs422(t *testing.T) {
	dsn := sharedDSN(t)
	a, b := startNode(t, dsn, "a", nodeOptions{}), startNode(t, dsn, "b", nodeOptions{})
	if r := a.post(simple, "order-9"); r.status != 202 {
		t.Fatalf("node a: %v", r)
	}
	other := map[string]any{"from": alice, "to": []string{"carol@example.net"}, "subject": "other", "text": "x"}
	r := b.post(other, "order-9")
	if r.status != 422 || r.code() != "idempotency_key_reused" {
		t.Fatalf("node b, another body: %v", r)
	}
	if n := b.relay.count(); n != 0 {
		t.Fatalf("node b queued %d", n)
	}
}

// A request that queues nothing (refused, or invalid) leaves its key free
// for a retry on another node.
func TestClusterRefusedRequestReleasesTheKey(t *testing.T) {
	dsn := sharedDSN(t)
	a, b := startNode(t, dsn, "a", nodeOptions{}), startNode(t, dsn, "b", nodeOptions{})
	a.relay.refuse.Store(true)
	if r := a.post(simple, "order-5"); r.status != 403 {
		t.Fatalf("node a, refused: %v", r)
	}
	if c := sharedRecord(t, a.shared, "order-5"); c != nil {
		t.Fatalf("a refused request left %+v", c)
	}
	if r := a.post(map[string]any{"from": alice}, "order-6"); r.status != 422 {
		t.Fatalf("node a, invalid: %v", r)
	}
	if c := sharedRecord(t, a.shared, "order-6"); c != nil {
		t.Fatalf("an invalid request left %+v", c)
	}
	r := b.post(simple, "order-5")
	if r.status != 202 || r.replayed || b.relay.count() != 1 {
		t.Fatalf("node b after a refused: %v (queued %d)", r, b.relay.count())
	}
}

// A claim whose node stopped answering is taken over after the lease; a
// late answer from that node does not replace the new one.
func TestClusterClaimPastItsLeaseIsTakenOver(t *testing.T) {
	dsn := sharedDSN(t)
	later := func() time.Time { return time.Now().Add(claimLease + time.Minute) }
	a, b := startNode(t, dsn, "a", nodeOptions{}), startNode(t, dsn, "b", nodeOptions{now: later})
	open := a.relay.hold(t)
	done := make(chan reply, 1)
	go func() { done <- a.post(simple, "order-3") }()
	a.waitEntered(t)
	r := b.post(simple, "order-3")
	if r.status != 202 || r.replayed || b.relay.count() != 1 {
		t.Fatalf("node b past the lease: %v", r)
	}
	open()
	if late := <-done; late.status != 202 {
		t.Fatalf("node a: %v", late)
	}
	if c := sharedRecord(t, a.shared, "order-3"); c == nil || c.Node != "b" || c.State != stateAnswered {
		t.Fatalf("shared record %+v, want node b's answer", c)
	}
	if !strings.Contains(b.logs.String(), "took over an Idempotency-Key claim past its lease") {
		t.Errorf("node b did not log the takeover:\n%s", b.logs)
	}
}

// A claim of the node's own with no request behind it (the node crashed
// after claiming) does not hold the key on that node.
func TestClusterOwnLeftoverClaimIsTakenOver(t *testing.T) {
	dsn := sharedDSN(t)
	a := startNode(t, dsn, "a", nodeOptions{})
	leftover := &claim{Request: requestHash([]byte("{}")), Node: "a", State: stateInFlight, Claimed: time.Now(), Token: newToken()}
	raw, _ := json.Marshal(leftover)
	err := a.shared.Update(func(tx store.Tx) error {
		return tx.Bucket(claimsBucket).Put(idemKey(alice, "order-1"), raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.post(simple, "order-1"); r.status != 202 || a.relay.count() != 1 {
		t.Fatalf("node a: %v", r)
	}
}

// While the shared store is down each node answers from its own file,
// saying so once; an answer it could not publish is published by Settle.
func TestClusterSharedStoreDown(t *testing.T) {
	dsn := sharedDSN(t)
	a, b := startNode(t, dsn, "a", nodeOptions{}), startNode(t, dsn, "b", nodeOptions{})
	a.shared.down.Store(true)
	for i := range 3 {
		key := fmt.Sprintf("down-%d", i)
		if r := a.post(simple, key); r.status != 202 {
			t.Fatalf("node a, store down: %v", r)
		}
		if r := a.post(simple, key); r.status != 202 || !r.replayed {
			t.Fatalf("node a, retry with the store down: %v", r)
		}
	}
	if n := strings.Count(a.logs.String(), "the shared store cannot be reached: Idempotency-Key answers are this node's own"); n != 1 {
		t.Fatalf("logged the outage %d times, want once:\n%s", n, a.logs)
	}
	a.shared.down.Store(false)

	// The store goes down between the claim and the answer: the claim
	// holds the key for the other nodes until Settle publishes the answer.
	open := a.relay.hold(t)
	done := make(chan reply, 1)
	go func() { done <- a.post(simple, "order-8") }()
	a.waitEntered(t)
	a.shared.down.Store(true)
	open()
	first := <-done
	if first.status != 202 {
		t.Fatalf("node a: %v", first)
	}
	if r := b.post(simple, "order-8"); r.status != 409 {
		t.Fatalf("node b before the answer is published: %v", r)
	}
	a.shared.down.Store(false)
	if err := a.h.SettleIdempotency(); err != nil {
		t.Fatal(err)
	}
	if r := b.post(simple, "order-8"); r.status != 202 || !r.replayed || r.body["id"] != first.body["id"] {
		t.Fatalf("node b after Settle: %v", r)
	}
	if !strings.Contains(a.logs.String(), "the shared store is reachable again") {
		t.Errorf("no recovery logged:\n%s", a.logs)
	}
	if na, nb := a.relay.count(), b.relay.count(); na != 4 || nb != 0 {
		t.Fatalf("queued %d on a and %d on b, want 4 and 0", na, nb)
	}
}

func TestClusterPurgeDeletesOldRecords(t *testing.T) {
	dsn := sharedDSN(t)
	a := startNode(t, dsn, "a", nodeOptions{})
	if r := a.post(simple, "old"); r.status != 202 {
		t.Fatal(r)
	}
	future := startNode(t, dsn, "b", nodeOptions{now: func() time.Time { return time.Now().Add(IdempotencyTTL + time.Minute) }})
	if err := a.h.PurgeIdempotency(); err != nil {
		t.Fatal(err)
	}
	if sharedRecord(t, a.shared, "old") == nil {
		t.Fatal("Purge deleted an answer younger than 24 h")
	}
	if err := future.h.PurgeIdempotency(); err != nil {
		t.Fatal(err)
	}
	if c := sharedRecord(t, a.shared, "old"); c != nil {
		t.Fatalf("an answer past 24 h is still there: %+v", c)
	}
}
