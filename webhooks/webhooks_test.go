package webhooks

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/smarthost"
	"outbound/store"
)

// rig is an event log whose events are queued for webhooks, as serve
// wires it: the secrets sealed by a smarthost store, whose key rotation
// re-seals them.
type rig struct {
	dir   string // the bbolt file t.db and the master key secrets.key
	db    *bolt.DB
	log   *events.Bolt
	wh    *Bolt
	hosts *smarthost.Store
}

func newRig(t *testing.T, p Policy) *rig {
	t.Helper()
	return openRig(t, t.TempDir(), p)
}

// openRig opens the stores in dir; on a dir a rig used before, it is a
// restart.
func openRig(t *testing.T, dir string, p Policy) *rig {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log, err := events.OpenBolt(store.Bolt(db), nil)
	must(t, err)
	hosts, err := smarthost.Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	must(t, err)
	wh, err := OpenBolt(store.Bolt(db), p, hosts)
	must(t, err)
	hosts.AlsoReseal(wh.Reseal)
	log.SetOutbox(wh)
	return &rig{dir: dir, db: db, log: log, wh: wh, hosts: hosts}
}

// run starts a worker until the test ends, or until the returned stop.
func (r *rig) run(t *testing.T, o Options) (stop func()) {
	o.Policy, o.Events = r.wh.policy, r.log
	w := NewWorker(r.wh, o)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { w.Run(quit); close(done) }()
	stop = sync.OnceFunc(func() { close(quit); <-done })
	t.Cleanup(stop)
	return stop
}

// receiver is an endpoint that fails its first failures requests and
// records what it took, checking every signature with the reference
// library.
type receiver struct {
	t        *testing.T
	failures int32
	secret   atomic.Value // string, set once registered

	mu    sync.Mutex
	seen  []string // webhook-id of each request, in order
	taken []string // webhook-id of each request answered 2xx
	types []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	wh, err := standardwebhooks.NewWebhook(rc.secret.Load().(string))
	if err != nil {
		rc.t.Error(err)
	}
	if err := wh.Verify(body, r.Header); err != nil {
		rc.t.Errorf("signature of %s does not verify: %v", r.Header.Get("webhook-id"), err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.seen = append(rc.seen, r.Header.Get("webhook-id"))
	if atomic.AddInt32(&rc.failures, -1) >= 0 {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	rc.taken = append(rc.taken, r.Header.Get("webhook-id"))
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		rc.t.Errorf("body %s: %v", body, err)
	}
	rc.types = append(rc.types, p.Type+":"+p.Data.Recipient)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() (seen, taken, types []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.seen...), append([]string(nil), rc.taken...), append([]string(nil), rc.types...)
}

// tlsServer is an HTTPS endpoint on loopback and a pool that trusts it.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, *x509.CertPool) {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fast(int) time.Duration { return 10 * time.Millisecond }

func TestSignatureMatchesTheSpecificationAndReferenceLibrary(t *testing.T) {
	// The example of the Standard Webhooks specification.
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	got, err := Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	must(t, err)
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
	// A fresh secret and a current timestamp, through the reference library.
	secret = NewSecret()
	body := []byte(`{"type":"message.relayed"}`)
	ts := time.Now().Unix()
	sig, err := Sign(secret, "msg_1", ts, body)
	must(t, err)
	wh, err := standardwebhooks.NewWebhook(secret)
	must(t, err)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", fmt.Sprint(ts))
	h.Set("webhook-signature", sig)
	if err := wh.Verify(body, h); err != nil {
		t.Errorf("reference library refuses our signature: %v", err)
	}
	if err := wh.Verify([]byte(`{"type":"message.failed"}`), h); err == nil {
		t.Error("reference library accepts a changed body")
	}
}

func TestEndpointDownThenBackGetsEveryEventOnceInOrder(t *testing.T) {
	rc := &receiver{t: t, failures: 3}
	srv, pool := tlsServer(t, rc)
	r := newRig(t, Policy{AllowPrivate: true})
	ep, secret, err := r.wh.Register(context.Background(), "alice", srv.URL+"/hooks", nil)
	must(t, err)
	rc.secret.Store(secret)
	if !strings.HasPrefix(secret, "whsec_") || ep.SecretHint == secret {
		t.Fatalf("secret %q, hint %q", secret, ep.SecretHint)
	}
	now := time.Now()
	for i := range 4 {
		must(t, r.log.Record(events.Event{At: now, Kind: events.Relayed, Message: "m1", User: "alice", Recipient: fmt.Sprintf("r%d@example.com", i)}))
	}
	// Bob's events are not alice's endpoint's business.
	must(t, r.log.Record(events.Event{At: now, Kind: events.Relayed, Message: "m2", User: "bob", Recipient: "bob@example.com"}))
	r.run(t, Options{RootCAs: pool, Backoff: fast})
	waitFor(t, "four events taken", func() bool { _, taken, _ := rc.snapshot(); return len(taken) >= 4 })
	waitFor(t, "an empty outbox", func() bool { l, _ := r.wh.List("alice"); return l[0].Pending == 0 })

	seen, taken, types := rc.snapshot()
	want := []string{"message.relayed:r0@example.com", "message.relayed:r1@example.com", "message.relayed:r2@example.com", "message.relayed:r3@example.com"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("taken in order %v, want %v", types, want)
	}
	// The head was retried with its own id before anything later went.
	for i := 0; i < 4; i++ {
		if seen[i] != seen[0] {
			t.Errorf("request %d was %s, want the head %s again", i, seen[i], seen[0])
		}
	}
	ids := map[string]bool{}
	for _, id := range taken {
		if ids[id] {
			t.Errorf("%s taken twice", id)
		}
		ids[id] = true
	}
	if len(seen) != 7 || len(taken) != 4 {
		t.Errorf("%d requests, %d taken; want 3 failures and 4 taken", len(seen), len(taken))
	}
}

func TestPrivateURLsAreRefusedAtRegistration(t *testing.T) {
	r := newRig(t, Policy{Resolver: fakeResolver{"inside.test": {"192.168.1.10"}, "mixed.test": {"93.184.216.34", "10.1.2.3"}}})
	for _, u := range []string{
		"https://127.0.0.1/hooks",
		"https://[::1]/hooks",
		"https://10.0.0.1/hooks",
		"https://169.254.169.254/latest/meta-data",
		"https://inside.test/hooks",
		"https://mixed.test/hooks",
		"http://93.184.216.34/hooks", // http without allow_http
		"ftp://93.184.216.34/",
		"https://user:pw@93.184.216.34/",
		"/relative",
	} {
		_, _, err := r.wh.Register(context.Background(), "alice", u, nil)
		var in *InputError
		if !errors.As(err, &in) {
			t.Errorf("Register(%s) = %v, want a refusal", u, err)
		}
	}
	if l, _ := r.wh.List(""); len(l) != 0 {
		t.Errorf("stored %v", l)
	}
	if _, _, err := r.wh.Register(context.Background(), "alice", "https://93.184.216.34/hooks", []events.Kind{"bogus"}); err == nil {
		t.Error("an unknown event kind was accepted")
	}
	if _, _, err := r.wh.Register(context.Background(), "alice", "https://93.184.216.34/hooks", []events.Kind{events.Failed}); err != nil {
		t.Errorf("a public https URL was refused: %v", err)
	}
}

func TestRebindingToLoopbackIsRefusedAtConnect(t *testing.T) {
	rc := &receiver{t: t}
	srv, pool := tlsServer(t, rc)
	port := srv.Listener.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	// Public when registered, loopback when connected to.
	res := &rebinding{}
	r := newRig(t, Policy{Resolver: res})
	ep, secret, err := r.wh.Register(context.Background(), "alice", "https://rebind.example.com:"+port+"/hooks", nil)
	must(t, err)
	rc.secret.Store(secret)
	must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.Failed, Message: "m1", User: "alice"}))
	r.run(t, Options{RootCAs: pool, Backoff: func(int) time.Duration { return time.Hour }})
	var h head
	waitFor(t, "a failed attempt", func() bool {
		h, _, _ = r.wh.head(ep.ID)
		return h.d.Attempts > 0
	})
	if !strings.Contains(h.d.LastError, "loopback") {
		t.Errorf("last error = %q, want a refusal to connect to loopback", h.d.LastError)
	}
	if seen, _, _ := rc.snapshot(); len(seen) != 0 {
		t.Errorf("the endpoint on loopback got %v", seen)
	}
}

func TestPersistentFailureDisablesEndpointAndTellsUser(t *testing.T) {
	rc := &receiver{t: t, failures: 1 << 30}
	srv, pool := tlsServer(t, rc)
	r := newRig(t, Policy{AllowPrivate: true})
	ep, secret, err := r.wh.Register(context.Background(), "alice", srv.URL, nil)
	must(t, err)
	rc.secret.Store(secret)
	must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.Relayed, Message: "m1", User: "alice"}))
	// Every retry would fall past MaxAge: the first failure is the last.
	r.run(t, Options{RootCAs: pool, Backoff: fast, MaxAge: time.Millisecond})
	waitFor(t, "the endpoint disabled", func() bool { e, _ := r.wh.Get(ep.ID); return !e.Disabled.IsZero() })
	got, _ := r.wh.Get(ep.ID)
	if !strings.Contains(got.DisabledReason, "503") {
		t.Errorf("reason = %q", got.DisabledReason)
	}
	page, err := r.log.List(events.Query{User: "alice"})
	must(t, err)
	last := page.Events[len(page.Events)-1]
	if last.Kind != events.WebhookDisabled || !strings.Contains(last.Detail, ep.ID) || !strings.Contains(last.Detail, "outbound webhook enable alice") {
		t.Errorf("last event = %+v, want webhook_disabled naming the endpoint and how to enable it", last)
	}
	// Nothing is queued for a disabled endpoint; what waited is sent once
	// it is enabled again and answers.
	must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.Failed, Message: "m1", User: "alice"}))
	if l, _ := r.wh.List("alice"); l[0].Pending != 1 {
		t.Errorf("pending = %d, want the head only", l[0].Pending)
	}
	atomic.StoreInt32(&rc.failures, 0)
	must(t, r.wh.Enable(ep.ID))
	waitFor(t, "the head sent", func() bool { _, taken, _ := rc.snapshot(); return len(taken) == 1 })
}

func TestDeleteDropsTheEndpointsDeliveries(t *testing.T) {
	r := newRig(t, Policy{AllowPrivate: true})
	ep, _, err := r.wh.Register(context.Background(), "alice", "https://127.0.0.1:1/", []events.Kind{events.Failed})
	must(t, err)
	must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.Failed, Message: "m1", User: "alice"},
		events.Event{At: time.Now(), Kind: events.Relayed, Message: "m1", User: "alice"}))
	if l, _ := r.wh.List("alice"); l[0].Pending != 1 {
		t.Errorf("pending = %d, want 1 (relayed is not wanted)", l[0].Pending)
	}
	must(t, r.wh.Delete(ep.ID))
	if _, err := r.wh.Get(ep.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
	must(t, r.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(outboxBucket).Cursor().First(); k != nil {
			t.Errorf("outbox still holds %q", k)
		}
		return nil
	}))
}

type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range f[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if out == nil {
		return nil, fmt.Errorf("no such host %s", host)
	}
	return out, nil
}

// rebinding answers a public address once, then loopback.
type rebinding struct{ calls atomic.Int32 }

func (r *rebinding) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 {
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
