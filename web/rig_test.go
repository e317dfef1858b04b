package web

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/admin"
	"outbound/auth"
	"outbound/autoconfig"
	"outbound/capture"
	"outbound/events"
	"outbound/internal/admintest"
	"outbound/queue"
	"outbound/quota"
	"outbound/sendapi"
	"outbound/smarthost"
	"outbound/store"
	"outbound/suppression"
)

const (
	operatorName     = "admin"
	operatorPassword = "operator password 1"
	senderPassword   = "sender password 1"
)

// clock is the rig's time, moved by tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// rig is the web interface over the real admin API and real stores in a
// temporary bbolt file, served by httptest, with an operator "admin" and
// the senders the test adds.
type rig struct {
	srv       *httptest.Server
	users     *auth.Store
	operators *auth.Operators
	queue     *queue.Queue
	quota     quota.Limiter
	hosts     *smarthost.Store
	clock     *clock
	events    *events.Bolt
	supp      *suppression.Bolt
	captured  *capture.Bolt
	apiKeys   *auth.APIKeys
	tmpls     *sendapi.Templates
}

type rigOptions struct {
	tls      bool
	throttle Throttle
	// allowPrivateHosts lets senders use an SMTP server on loopback, as
	// web.allow_private_hosts does.
	allowPrivateHosts bool
	// spf checks users' SPF for their page's SPF section; nil: not
	// configured (the API answers 501).
	spf admin.SPFChecker
	// suppressionScope is [suppression] scope; "": per user.
	suppressionScope suppression.Scope
}

func newRig(t *testing.T, o ...rigOptions) *rig {
	t.Helper()
	var opts rigOptions
	if len(o) > 0 {
		opts = o[0]
	}
	// The admin API as the admin tests have it, with what the web
	// interface needs on top: operators, capture, API keys, templates.
	parts := admintest.NewParts(t)
	db, users := parts.DB, parts.Users
	ops, err := auth.NewOperators(store.Bolt(db), users)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Add(operatorName, operatorPassword); err != nil {
		t.Fatal(err)
	}
	supp := parts.Suppressions
	if opts.suppressionScope != "" {
		// The list over the same bucket, in the scope the test wants.
		if supp, err = suppression.OpenBolt(store.Bolt(db), opts.suppressionScope, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	captured, err := capture.OpenBolt(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	apiKeys, err := auth.NewAPIKeys(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	tmpls, err := sendapi.OpenTemplates(store.Bolt(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	apiOpts := parts.Options
	apiOpts.AllowPrivateHosts, apiOpts.SPF, apiOpts.Suppressions = opts.allowPrivateHosts, opts.spf, supp
	apiOpts.Capture, apiOpts.APIKeys, apiOpts.Templates = captured, apiKeys, tmpls
	api := admin.Handler(apiOpts)
	c := &clock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	profile := func(login string) ([]byte, error) {
		u, err := users.Get(login)
		if err != nil {
			return nil, err
		}
		return autoconfig.Options{Hostname: "relay.test"}.Profile(u), nil
	}
	h, err := Handler(Options{API: api, Token: admintest.Token, Operators: ops, Users: users,
		Throttle: opts.throttle, Now: c.Now, AppleProfile: profile, AllowPrivateHosts: opts.allowPrivateHosts})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	if opts.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return &rig{srv: srv, users: users, operators: ops, queue: parts.Queue, quota: parts.Quota, hosts: parts.Smarthosts,
		clock: c, events: parts.Events, supp: supp, captured: captured, apiKeys: apiKeys, tmpls: tmpls}
}

// addMessage queues a message user submitted to rcpts, all queued.
func (r *rig) addMessage(t *testing.T, user string, rcpts ...string) *queue.Message {
	t.Helper()
	// Created is the queue's own clock (real time, as the API's 24-hour
	// counts), not the rig's.
	m := &queue.Message{User: user, From: user}
	for _, rc := range rcpts {
		m.Recipients = append(m.Recipients, queue.Recipient{Addr: rc, Status: queue.Queued})
	}
	if err := r.queue.Add(m, []byte("From: "+user+"\r\nSubject: hello\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	return m
}

// addSender adds a relay user with senderPassword.
func (r *rig) addSender(t *testing.T, name string) {
	t.Helper()
	if _, err := r.users.Add(name, senderPassword, nil); err != nil {
		t.Fatal(err)
	}
}

// browser is one browser: its own cookies, no redirects followed (tests
// look at them).
type browser struct {
	t    *testing.T
	rig  *rig
	http *http.Client
}

func (r *rig) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	// A copy: httptest hands every caller the same client.
	c := *r.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, rig: r, http: &c}
}

// response is an answer as a test reads it.
type response struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(data), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.rig.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form as it is: the test decides whether it carries "csrf".
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.rig.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms on the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	r := b.get(path)
	m := csrfField.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("GET %s: %d, no csrf field in the page:\n%s", path, r.status, r.body)
	}
	return m[1]
}

// submit posts form to path with the CSRF token of the page at from.
func (b *browser) submit(from, path string, form url.Values) response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf(from))
	return b.post(path, form)
}

// signIn signs in through the sign-in form and fails the test unless it
// worked.
func (b *browser) signIn(login, password string) {
	b.t.Helper()
	r := b.trySignIn(login, password)
	if r.status != http.StatusSeeOther {
		b.t.Fatalf("sign in as %s: %d\n%s", login, r.status, r.body)
	}
}

func (b *browser) trySignIn(login, password string) response {
	b.t.Helper()
	return b.submit("/login", "/login", url.Values{"login": {login}, "password": {password}})
}
