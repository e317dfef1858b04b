package ship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/internal/pgtest"
	"outbound/internal/testutil"
	"outbound/store"
	"outbound/suppression"
)

// waitFor is how long a test waits for something another goroutine does
// (generous: a loaded CI machine).
const waitFor = 30 * time.Second

// at is the time of the tests' events. Most share it, so that the shared
// log orders them by arrival alone: the order they were shipped in.
var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sharedStore gives a test a fresh shared store and returns how a node
// opens it (each Postgres node its own connection pool, as in a cluster).
type sharedStore func(t *testing.T) func(node string) store.DB

// backends are the shared stores every test runs against: a second bbolt
// file, and a database of the process's PostgreSQL test cluster.
var backends = []struct {
	name string
	open sharedStore
}{
	{"bolt", func(t *testing.T) func(string) store.DB {
		db := openFile(t, filepath.Join(t.TempDir(), "shared.db"))
		return func(string) store.DB { return store.Bolt(db) }
	}},
	{"postgres", func(t *testing.T) func(string) store.DB {
		dsn := pgtest.Shared(t).NewDatabase(t)
		return func(node string) store.DB { return openPostgres(t, dsn, node) }
	}},
}

// eachBackend runs test once per shared store.
func eachBackend(t *testing.T, test func(t *testing.T, shared func(node string) store.DB)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.open(t)) })
	}
}

func openFile(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: waitFor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t *testing.T, dsn, node string) *store.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: node,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// flakyDB is the node's file whose Updates fail while fail is set (a full
// disk), for the shipper's clearing of its outbox.
type flakyDB struct {
	store.DB
	fail atomic.Bool
}

func (d *flakyDB) Update(fn func(store.Tx) error) error {
	if d.fail.Load() {
		return errors.New("flaky: no space left on device")
	}
	return d.DB.Update(fn)
}

// node is one relay node: its own bbolt file with the outbox, and its
// shipper into the shared store.
type node struct {
	t      *testing.T
	name   string
	file   *bolt.DB
	local  *flakyDB
	shared store.DB
	sh     *Shipper
	log    *events.Bolt
	sup    *suppression.Bolt

	mu      sync.Mutex
	counted map[events.Kind]int // by the shipper's Counted
	// recounted is how many events the shared log counted: shipping must
	// not count again what the node counted.
	recounted atomic.Int64
}

// newNode is node name with a fresh file, shipping to shared.
func newNode(t *testing.T, name string, shared store.DB, o Options) *node {
	return openNode(t, name, filepath.Join(t.TempDir(), "outbound.db"), shared, o)
}

// openNode is node name on the file at path.
func openNode(t *testing.T, name, path string, shared store.DB, o Options) *node {
	t.Helper()
	n := &node{t: t, name: name, file: openFile(t, path), shared: shared, counted: map[events.Kind]int{}}
	n.local = &flakyDB{DB: store.Bolt(n.file)}
	var err error
	n.log, err = events.OpenBolt(shared, func(events.Kind) { n.recounted.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if n.sup, err = suppression.OpenBolt(shared, suppression.PerUser, 0, nil); err != nil {
		t.Fatal(err)
	}
	o.Node = name
	o.Counted = func(k events.Kind) {
		n.mu.Lock()
		n.counted[k]++
		n.mu.Unlock()
	}
	if n.sh, err = New(n.local, shared, n.log, n.sup, o); err != nil {
		t.Fatal(err)
	}
	return n
}

// write records evs as the relay does: Write as a queue.TxHook in an
// Update of the node's file, then Counted after the commit.
func (n *node) write(evs ...events.Event) {
	n.t.Helper()
	if err := n.file.Update(func(tx *bolt.Tx) error { return n.sh.Write(evs...)(tx) }); err != nil {
		n.t.Fatal(err)
	}
	n.sh.Counted(evs)
}

// put records evs as delivery does: Put in the transaction of the attempt.
func (n *node) put(evs ...events.Event) {
	n.t.Helper()
	if err := n.local.DB.Update(func(tx store.Tx) error { return n.sh.Put(tx, evs...) }); err != nil {
		n.t.Fatal(err)
	}
	n.sh.Counted(evs)
}

// journal runs fn in an Update of the node's file, as the retention sweep
// runs the queue's Journal.
func (n *node) journal(fn func(tx *bolt.Tx) error) {
	n.t.Helper()
	if err := n.file.Update(fn); err != nil {
		n.t.Fatal(err)
	}
}

// shipAll ships until the outbox is empty and returns how many entries
// each ShipOnce shipped.
func (n *node) shipAll() []int {
	n.t.Helper()
	var rounds []int
	for {
		k, err := n.sh.ShipOnce()
		if err != nil {
			n.t.Fatalf("node %s: ShipOnce: %v", n.name, err)
		}
		if k == 0 {
			return rounds
		}
		rounds = append(rounds, k)
	}
}

// outbox is the node's outbox: its keys and values, in order.
func (n *node) outbox() (keys, values [][]byte) {
	n.t.Helper()
	err := n.file.View(func(tx *bolt.Tx) error {
		return tx.Bucket(outboxBucket).ForEach(func(k, v []byte) error {
			keys = append(keys, bytes.Clone(k))
			values = append(values, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return keys, values
}

func (n *node) outboxLen() int {
	keys, _ := n.outbox()
	return len(keys)
}

// restore puts entries back into the outbox under their keys, as they are
// after a crash between the shipment and the clearing of the outbox.
func (n *node) restore(keys, values [][]byte) {
	n.t.Helper()
	n.journal(func(tx *bolt.Tx) error {
		for i := range keys {
			if err := tx.Bucket(outboxBucket).Put(keys[i], values[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (n *node) countedOf(k events.Kind) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.counted[k]
}

// forMessage is message id's events in the shared log.
func forMessage(t *testing.T, log *events.Bolt, id string) []events.Event {
	t.Helper()
	evs, err := log.ForMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// listAll is the whole shared log in order, page after page.
func listAll(t *testing.T, log *events.Bolt) []events.Event {
	t.Helper()
	var all []events.Event
	q := events.Query{}
	for {
		p, err := log.List(q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Events...)
		if p.Next == "" {
			return all
		}
		q.Cursor = p.Next
	}
}

// details are the events' Detail fields, the tests' names for them.
func details(evs []events.Event) string {
	var d []string
	for _, e := range evs {
		d = append(d, e.Detail)
	}
	return strings.Join(d, " ")
}

// numbered is count events of message id, Detail prefix1 .. prefixN.
func numbered(id, prefix string, count int) []events.Event {
	evs := make([]events.Event, count)
	for i := range evs {
		evs[i] = events.Event{At: at, Kind: events.Deferred, Message: id, User: "alice",
			Recipient: "bob@example.net", Detail: fmt.Sprintf("%s%d", prefix, i+1)}
	}
	return evs
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: not %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Events written in the queue's transaction (Write, Put) reach the shared
// log in the order of their commits, with the node's name, counted once
// by the node and not again when shipped; the outbox is empty afterwards.
func TestShippedEventsReachTheSharedLogInOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		n := newNode(t, "a", shared("a"), Options{})
		received := events.Event{At: at, Kind: events.Received, Message: "m1", User: "alice",
			Recipient: "bob@example.net", Tags: []string{"welcome"}, Detail: "received"}
		n.write(received)
		n.put(numbered("m1", "try", 2)...)
		n.write(events.Event{At: at.Add(time.Minute), Kind: events.Relayed, Message: "m1", User: "alice",
			Recipient: "bob@example.net", Detail: "relayed"},
			events.Event{At: at, Kind: events.Received, Message: "m2", User: "carol", Detail: "other"})
		if got := n.outboxLen(); got != 5 {
			t.Fatalf("outbox holds %d entries before shipping, want 5", got)
		}
		if got := forMessage(t, n.log, "m1"); len(got) != 0 {
			t.Fatalf("the shared log has %d events before shipping, want none", len(got))
		}

		if got := n.shipAll(); len(got) != 1 || got[0] != 5 {
			t.Fatalf("ShipOnce shipped %v, want [5]", got)
		}
		evs := forMessage(t, n.log, "m1")
		if got, want := details(evs), "received try1 try2 relayed"; got != want {
			t.Fatalf("m1's shared events %q, want %q", got, want)
		}
		for _, e := range evs {
			if e.Node != "a" || e.ID == "" || e.User != "alice" {
				t.Errorf("shipped event %+v: want node a, an ID and user alice", e)
			}
		}
		if got := evs[0].Tags; len(got) != 1 || got[0] != "welcome" {
			t.Errorf("received event's tags %q, want [welcome]", got)
		}
		if got, want := details(listAll(t, n.log)), "received try1 try2 other relayed"; got != want {
			t.Errorf("shared listing %q, want %q (time, then the order shipped)", got, want)
		}
		if got := n.outboxLen(); got != 0 {
			t.Errorf("outbox holds %d entries after shipping, want 0", got)
		}
		if got := n.shipAll(); len(got) != 0 {
			t.Errorf("a second round shipped %v, want nothing", got)
		}
		if n.countedOf(events.Received) != 2 || n.countedOf(events.Deferred) != 2 || n.countedOf(events.Relayed) != 1 {
			t.Errorf("counted %v, want received 2, deferred 2, relayed 1", n.counted)
		}
		if got := n.recounted.Load(); got != 0 {
			t.Errorf("the shared log counted %d shipped events again, want 0", got)
		}
	})
}

// A message removed at retention loses its shared events; a redaction
// ships as a redacted event with the message's tags from the shared log.
func TestShippedRemovalAndRedaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		n := newNode(t, "a", shared("a"), Options{})
		for _, id := range []string{"kept", "gone", "brief"} {
			n.write(events.Event{At: at, Kind: events.Received, Message: id, User: "alice",
				Tags: []string{"t-" + id}, Detail: "received"})
		}
		n.shipAll()
		later := at.Add(time.Hour)
		n.journal(func(tx *bolt.Tx) error {
			if err := n.sh.Redacted(tx, "kept", "alice", later); err != nil {
				return err
			}
			return n.sh.Removed(tx, "gone")
		})
		// Written and removed before one shipment: nothing is left.
		n.write(events.Event{At: at, Kind: events.Relayed, Message: "brief", User: "alice", Detail: "relayed"})
		n.journal(func(tx *bolt.Tx) error { return n.sh.Removed(tx, "brief") })
		n.shipAll()

		if got := forMessage(t, n.log, "gone"); len(got) != 0 {
			t.Errorf("removed message has %d shared events: %+v", len(got), got)
		}
		if got := forMessage(t, n.log, "brief"); len(got) != 0 {
			t.Errorf("message removed in the same shipment has %d shared events: %+v", len(got), got)
		}
		evs := forMessage(t, n.log, "kept")
		if len(evs) != 2 {
			t.Fatalf("redacted message has %d shared events, want received and redacted: %+v", len(evs), evs)
		}
		r := evs[1]
		if r.Kind != events.Redacted || r.Node != "a" || !r.At.Equal(later) || r.User != "alice" {
			t.Errorf("redaction shipped as %+v", r)
		}
		if len(r.Tags) != 1 || r.Tags[0] != "t-kept" {
			t.Errorf("redacted event's tags %q, want the message's [t-kept]", r.Tags)
		}
		if got := n.outboxLen(); got != 0 {
			t.Errorf("outbox holds %d entries, want 0", got)
		}
	})
}

// A suppression delivery learns lands on the shared list.
func TestShippedSuppressionIsOnTheSharedList(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		n := newNode(t, "a", shared("a"), Options{})
		learnt := suppression.Entry{User: "alice", Addr: "Gone@Example.NET", Kind: suppression.Bounce,
			Reason: "550 5.1.1 no such user", Message: "m1"}
		if err := n.local.DB.Update(func(tx store.Tx) error { return n.sh.Suppressions().Put(tx, learnt) }); err != nil {
			t.Fatal(err)
		}
		if e, err := n.sup.Lookup("alice", "gone@example.net"); err != nil || e != nil {
			t.Fatalf("before shipping: Lookup = %+v, %v; want nothing", e, err)
		}
		n.shipAll()
		e, err := n.sup.Lookup("alice", "gone@example.net")
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || e.Kind != suppression.Bounce || e.Reason != learnt.Reason || e.Expires.IsZero() {
			t.Fatalf("shared suppression %+v, want the bounce with an expiry", e)
		}
		if e, _ := n.sup.Lookup("bob", "gone@example.net"); e != nil {
			t.Errorf("suppressed for another user: %+v", e)
		}
	})
}

// Entries shipped whose removal from the outbox did not happen (a crash in
// between, or a failing disk) do not ship again; what follows them does.
func TestShipAfterACrashShipsNothingTwice(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		n := newNode(t, "a", shared("a"), Options{})
		n.write(numbered("m1", "first", 3)...)
		keys, values := n.outbox()
		n.shipAll()
		n.restore(keys, values) // the crash: shipped, still in the outbox
		n.write(numbered("m1", "second", 1)...)
		if got := n.shipAll(); len(got) != 1 || got[0] != 4 {
			t.Fatalf("after the crash ShipOnce handled %v, want [4] (3 skipped, 1 shipped)", got)
		}
		if got, want := details(forMessage(t, n.log, "m1")), "first1 first2 first3 second1"; got != want {
			t.Fatalf("shared events %q, want %q", got, want)
		}

		// The disk fails as the shipper clears its outbox.
		n.write(numbered("m1", "third", 2)...)
		n.local.fail.Store(true)
		k, err := n.sh.ShipOnce()
		if err == nil || k != 2 {
			t.Fatalf("ShipOnce with a failing disk = %d, %v; want 2 and the clearing's error", k, err)
		}
		n.local.fail.Store(false)
		if got := n.outboxLen(); got != 2 {
			t.Fatalf("outbox holds %d entries after a failed clearing, want 2", got)
		}
		n.shipAll()
		if got, want := details(forMessage(t, n.log, "m1")), "first1 first2 first3 second1 third1 third2"; got != want {
			t.Fatalf("shared events %q, want %q", got, want)
		}
		if got := n.outboxLen(); got != 0 {
			t.Errorf("outbox holds %d entries, want 0", got)
		}
	})
}

// More entries than one shipment takes ship in batches, all of them, in
// order.
func TestShipManyEntriesInBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		n := newNode(t, "a", shared("a"), Options{})
		const count = 600
		evs := numbered("m1", "e", count)
		// In several commits, as messages come.
		for i := 0; i < count; i += 100 {
			n.write(evs[i : i+100]...)
		}
		if got := n.shipAll(); fmt.Sprint(got) != fmt.Sprint([]int{batch, batch, count - 2*batch}) {
			t.Fatalf("ShipOnce shipped %v, want batches of %d", got, batch)
		}
		got := forMessage(t, n.log, "m1")
		listed := listAll(t, n.log)
		if details(got) != details(evs) || details(listed) != details(evs) {
			t.Fatalf("shared log has %d events (listed %d), want %d in order", len(got), len(listed), count)
		}
		if got := n.countedOf(events.Deferred); got != count {
			t.Errorf("counted %d, want %d", got, count)
		}
	})
}

// Run ships what a commit woke it for, and returns when done is closed.
func TestRunShipsWhenWokenAndStops(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		n := newNode(t, "a", shared("a"), Options{})
		done, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			n.sh.Run(done)
		}()
		n.write(numbered("m1", "e", 3)...)
		eventually(t, "shipped by Run", func() bool { return len(forMessage(t, n.log, "m1")) == 3 })
		close(done)
		select {
		case <-stopped:
		case <-time.After(waitFor):
			t.Fatal("Run did not return after done was closed")
		}
		if got := n.outboxLen(); got != 0 {
			t.Errorf("outbox holds %d entries, want 0", got)
		}
	})
}

// While PostgreSQL is down entries wait in the outbox: ShipOnce fails,
// Run keeps trying (saying so once) and ships them when it is back.
func TestEntriesWaitWhileTheSharedStoreIsDown(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	logs := &testutil.SyncBuffer{}
	n := newNode(t, "a", openPostgres(t, dsn, "a"), Options{Retry: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	n.write(numbered("m1", "down", 2)...)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if k, err := n.sh.ShipOnce(); err == nil {
		t.Fatalf("ShipOnce with the database stopped shipped %d, want an error", k)
	}
	if got := n.outboxLen(); got != 2 {
		t.Fatalf("outbox holds %d entries after a failed shipment, want 2", got)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got := n.shipAll(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("after the restart ShipOnce shipped %v, want [2]", got)
	}

	// Run through an outage.
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		n.sh.Run(done)
	}()
	defer func() {
		close(done)
		<-stopped
	}()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	n.write(numbered("m1", "outage", 2)...)
	eventually(t, "logged that events wait", func() bool { return strings.Contains(logs.String(), "events wait") })
	if got := n.outboxLen(); got != 2 {
		t.Fatalf("outbox holds %d entries during the outage, want 2", got)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "shipped after the restart", func() bool {
		evs, err := n.log.ForMessage("m1")
		return err == nil && len(evs) == 4
	})
	if got, want := details(forMessage(t, n.log, "m1")), "down1 down2 outage1 outage2"; got != want {
		t.Errorf("shared events %q, want %q", got, want)
	}
	eventually(t, "logged that the store is back", func() bool {
		return strings.Contains(logs.String(), "takes events again")
	})
	if got := strings.Count(logs.String(), "events wait"); got != 1 {
		t.Errorf("the outage was logged %d times, want once:\n%s", got, logs)
	}
}

// Two nodes' shippers into one shared store: both nodes' events arrive,
// and one node's crash does not hold back or repeat the other's.
func TestTwoNodesShipIntoOneStore(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		a := newNode(t, "a", shared("a"), Options{})
		b := newNode(t, "b", shared("b"), Options{})
		a.write(numbered("ma", "a", 300)...)
		b.write(numbered("mb", "b", 300)...)
		bKeys, bValues := b.outbox()

		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, n := range []*node{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k, err := n.sh.ShipOnce()
					if err != nil || k == 0 {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		check := func(n *node, id string, want []events.Event) {
			t.Helper()
			evs := forMessage(t, n.log, id)
			if details(evs) != details(want) {
				t.Fatalf("%s: %d shared events, want %d in order", id, len(evs), len(want))
			}
			for _, e := range evs {
				if e.Node != n.name {
					t.Fatalf("%s's event from node %q, want %q", id, e.Node, n.name)
				}
			}
		}
		check(a, "ma", numbered("ma", "a", 300))
		check(b, "mb", numbered("mb", "b", 300))

		// b crashed before clearing its outbox; a writes on.
		b.restore(bKeys, bValues)
		a.write(numbered("ma2", "a", 1)...)
		b.write(numbered("mb2", "b", 1)...)
		b.shipAll()
		a.shipAll()
		check(a, "ma2", numbered("ma2", "a", 1))
		check(b, "mb", numbered("mb", "b", 300))
		check(b, "mb2", numbered("mb2", "b", 1))
	})
}

// Nodes that go by one name (the default: the relay's hostname, often the
// same behind a load balancer) each ship all their entries.
func TestNodesOfOneNameShipEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		const name = "mail.example.org"
		a := newNode(t, name, shared("a"), Options{})
		b := newNode(t, name, shared("b"), Options{})
		a.write(numbered("ma", "a", 3)...)
		a.shipAll()
		b.write(numbered("mb", "b", 2)...)
		b.shipAll()
		a.write(numbered("ma", "a", 4)[3:]...)
		a.shipAll()
		if got, want := details(forMessage(t, a.log, "ma")), "a1 a2 a3 a4"; got != want {
			t.Errorf("first node's events %q, want %q", got, want)
		}
		if got, want := details(forMessage(t, b.log, "mb")), "b1 b2"; got != want {
			t.Errorf("second node's events %q, want %q", got, want)
		}
	})
}

// A node whose file was restored from a copy older than what it shipped
// ships neither the copy's shipped entries again nor loses new ones.
func TestNodeRestoredFromAnOlderCopy(t *testing.T) {
	eachBackend(t, func(t *testing.T, shared func(string) store.DB) {
		dir := t.TempDir()
		path, backup := filepath.Join(dir, "outbound.db"), filepath.Join(dir, "backup.db")
		a := openNode(t, "a", path, shared("a"), Options{})
		a.write(numbered("m1", "e", 2)...)
		if err := a.file.View(func(tx *bolt.Tx) error { return tx.CopyFile(backup, 0o600) }); err != nil {
			t.Fatal(err)
		}
		a.write(numbered("m1", "e", 4)[2:]...)
		a.shipAll()
		a.file.Close()

		restored := openNode(t, "a", backup, shared("a2"), Options{})
		restored.write(numbered("m1", "e", 6)[4:]...)
		restored.shipAll()
		if got, want := details(forMessage(t, restored.log, "m1")), "e1 e2 e3 e4 e5 e6"; got != want {
			t.Errorf("shared events %q, want %q", got, want)
		}
		if got := restored.outboxLen(); got != 0 {
			t.Errorf("outbox holds %d entries, want 0", got)
		}
	})
}
