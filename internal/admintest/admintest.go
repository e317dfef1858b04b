// Package admintest is the admin API on real parts, for the tests of the
// API and of the CLI: one rig, built one way.
package admintest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outbound/admin"
	"outbound/auth"
	"outbound/delivery"
	"outbound/events"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/quota"
	"outbound/route"
	"outbound/smarthost"
	"outbound/spf"
	"outbound/store"
	"outbound/suppression"
	"outbound/webhooks"

	bolt "go.etcd.io/bbolt"
)

// The rig's secrets, for tests that check they never come back.
const (
	// Token is the API's bearer token.
	Token = "test-token-0123456789"
	// UpstreamUser and UpstreamPassword are what Upstream accepts; the
	// API masks that password as "****xyz789".
	UpstreamUser     = "apikey"
	UpstreamPassword = "SG.upstream-secret-xyz789"
)

// Rig is the admin handler on an httptest server, over the stores of
// Parts.
type Rig struct {
	// URL is the API's base URL; Client speaks to it with Token.
	URL    string
	Client *admin.Client
	*Parts
}

// Parts are what a Rig is built from, before its handler is made: real
// stores in a temporary bbolt file, a real route.Router, a delivery.Deliverer
// that does not run as the operator's bounce (so nothing is delivered), and
// the handler's options over them. A rig that mounts the API its own way
// (the web interface's) starts from here, so that the API is set up in one
// place for every test.
//
// The router's settings are those every test relies on: a default route
// with an SPF include and the warn policy, limits of 2 per hour and 2 per
// day there and 50/500 for users on a smarthost, a limits.max_per_day
// ceiling of 10000.
type Parts struct {
	// DB holds the stores, for stores a test adds beside them.
	DB *bolt.DB
	// Options are the handler's options: the stores below, the router,
	// the bounce, Token and the local name "relay.test".
	Options admin.Options

	Users      *auth.Store
	Queue      *queue.Queue
	Quota      *quota.Store
	Smarthosts *smarthost.Store
	// Events and Suppressions are the event log and the suppression list
	// (scope "user", the default expiry).
	Events       *events.Bolt
	Suppressions *suppression.Bolt
	// Webhooks are the users' webhook endpoints (Policy{}: https at
	// public addresses only); the event log queues deliveries for them.
	Webhooks *webhooks.Bolt

	// Upstream is a STARTTLS smarthost on 127.0.0.1 whose certificate
	// comes from a test CA, the one in CAFile; it takes UpstreamUser and
	// UpstreamPassword.
	Upstream *testutil.Upstream
	CAFile   string
}

// New builds a Rig, stopped at cleanup.
func New(t testing.TB) *Rig {
	t.Helper()
	return NewWith(t, nil)
}

// NewWith builds a Rig whose handler options are changed by change (nil:
// none) before the handler is made: for the tests of a setting.
func NewWith(t testing.TB, change func(*admin.Options)) *Rig {
	t.Helper()
	p := NewParts(t)
	if change != nil {
		change(&p.Options)
	}
	srv := httptest.NewServer(admin.Handler(p.Options))
	t.Cleanup(srv.Close)
	return &Rig{URL: srv.URL, Client: admin.NewClient(srv.URL, Token, srv.Client()), Parts: p}
}

// NewParts builds the Parts of a Rig; the Upstream stops at cleanup.
func NewParts(t testing.TB) *Parts {
	t.Helper()
	db := testutil.OpenDB(t)
	sdb := store.Bolt(db)
	users, err := auth.NewStore(sdb)
	if err != nil {
		t.Fatal(err)
	}
	users.SetHashCost(4)
	q, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := quota.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	evlog, err := events.OpenBolt(sdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	suppressed, err := suppression.OpenBolt(sdb, suppression.PerUser, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hosts, err := smarthost.Open(sdb, filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	// Endpoints at public addresses only; literal addresses need no DNS.
	// Their secrets are sealed under the smarthosts' key, as serve does.
	hooks, err := webhooks.OpenBolt(sdb, webhooks.Policy{}, hosts)
	if err != nil {
		t.Fatal(err)
	}
	hosts.AlsoReseal(hooks.Reseal)
	evlog.SetOutbox(hooks)
	routes, err := route.New(route.Options{
		Default: route.Default{Host: "smtp.example.net", Port: 587, TLSMode: "starttls",
			SPFInclude: "_spf.example.net", SPFPolicy: spf.PolicyWarn},
		DefaultLimits: quota.Limits{PerHour: 2, PerDay: 2},
		OwnLimits:     quota.Limits{PerHour: 50, PerDay: 500},
		MaxPerDay:     10000,
		Smarthosts:    hosts,
	})
	if err != nil {
		t.Fatal(err)
	}
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS:      &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}},
		Username: UpstreamUser, Password: UpstreamPassword,
	})
	opts := admin.Options{Users: users, Queue: q, Quota: qs, Routes: routes,
		Bouncer: delivery.New(q, routes, delivery.Options{LocalName: "relay.test"}), Token: Token,
		Smarthosts: hosts, LocalName: "relay.test", ConnectionTestTimeout: 2 * time.Second,
		Events: evlog, Suppressions: suppressed, Webhooks: hooks}
	return &Parts{DB: db, Options: opts, Users: users, Queue: q, Quota: qs, Smarthosts: hosts,
		Events: evlog, Suppressions: suppressed, Webhooks: hooks, Upstream: up,
		CAFile: testutil.WriteFile(t, dir, "ca.pem", ca.PEM)}
}

// SmarthostRequest is a smarthost called name that passes its connection
// test: Upstream, with its CA and credentials, and an SPF include.
func (r *Rig) SmarthostRequest(name string) admin.SmarthostRequest {
	return admin.SmarthostRequest{Name: name, ConnectionSettings: admin.ConnectionSettings{Host: r.Upstream.Host,
		Port: r.Upstream.Port, TLS: "starttls", Username: UpstreamUser, Password: UpstreamPassword, CAFile: r.CAFile},
		SPFInclude: "sendgrid.net"}
}

// AddSmarthost adds the smarthost of SmarthostRequest(name) through the API.
func (r *Rig) AddSmarthost(t testing.TB, name string) {
	t.Helper()
	if _, err := r.Client.AddSmarthost(r.SmarthostRequest(name)); err != nil {
		t.Fatalf("add smarthost %s: %v", name, err)
	}
}

// AddUsers stores users on the default route, with no allowed senders
// besides their login and the password "user password 1".
func (r *Rig) AddUsers(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := r.Users.Add(n, "user password 1", nil); err != nil {
			t.Fatal(err)
		}
	}
}

// Call sends a request as it comes, for the tests of what goes over the
// wire (tokens, malformed bodies, the exact JSON): body is a string sent
// as it is, or a value sent as JSON, or nil; token "" sends none. It
// returns the status and the answer, and fails the test unless the answer
// is JSON, as every answer of the API is.
func (r *Rig) Call(t testing.TB, method, path, token string, body any) (int, string) {
	t.Helper()
	var in io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		in = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		in = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, r.URL+path, in)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, string(data)
}
