package delivery_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/route"
)

// These tests drive the real Deliverer (Run) against a real bbolt queue and
// real go-smtp upstreams on 127.0.0.1. They assert on what the upstream
// recorded and on what the queue stored.

const sender = "alice@example.com"

// body is a message as the relay stores it: CRLF lines, headers, body.
const body = "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hello\r\n\r\nHello Bob.\r\n"

// routes is a Router over a fixed map; "" is the default route.
type routes map[string]*route.Upstream

func (r routes) Upstream(route string) (*route.Upstream, error) {
	if u, ok := r[route]; ok {
		return u, nil
	}
	return nil, fmt.Errorf("no upstream configured for route %q", route)
}

func newQueue(t *testing.T) *queue.Queue {
	t.Helper()
	q, err := queue.Open(testutil.OpenDB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// startDelivery runs a Deliverer until the test ends (or stop is called)
// and checks that Run returns promptly. Zero options get test defaults: two
// workers, two connections per upstream, short timeouts, no retry within a
// test unless RetryDelay is given, and a short upstream backoff.
func startDelivery(t *testing.T, q delivery.Queue, r delivery.Router, opts delivery.Options) (stop func()) {
	t.Helper()
	if opts.LocalName == "" {
		opts.LocalName = "relay.test"
	}
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	if opts.ConnectionsPerUpstream == 0 {
		opts.ConnectionsPerUpstream = 2
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 2 * time.Second
	}
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = 5 * time.Second
	}
	if opts.IdleConnection == 0 {
		opts.IdleConnection = time.Minute
	}
	if opts.RetryDelay == nil {
		opts.RetryDelay = func(int) time.Duration { return time.Hour }
	}
	if opts.UpstreamBackoff == nil {
		opts.UpstreamBackoff = func(int) time.Duration { return 10 * time.Millisecond }
	}
	done := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		delivery.New(q, r, opts).Run(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			select {
			case <-returned:
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of done being closed")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// add queues a message from sender to rcpts on the default route.
func add(t *testing.T, q *queue.Queue, body string, rcpts ...string) *queue.Message {
	t.Helper()
	m := &queue.Message{User: sender, From: sender}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, queue.Recipient{Addr: r, Status: queue.Queued})
	}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls the stored record of message id until cond holds.
func waitFor(t *testing.T, q *queue.Queue, id, what string, cond func(*queue.Message) bool) *queue.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := q.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: not %s within 5s; stored record: %s", id, what, describe(m))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func finished(m *queue.Message) bool { return !m.Pending() }

func attempted(n int) func(*queue.Message) bool {
	return func(m *queue.Message) bool { return len(m.Attempts) >= n }
}

func describe(m *queue.Message) string {
	var b strings.Builder
	for _, r := range m.Recipients {
		fmt.Fprintf(&b, "[%s %s attempts=%d reply=%q] ", r.Addr, r.Status, r.Attempts, r.Reply)
	}
	for _, a := range m.Attempts {
		fmt.Fprintf(&b, "{attempt %s: %q} ", a.Upstream, a.Result)
	}
	return b.String()
}

func recipient(t *testing.T, m *queue.Message, addr string) queue.Recipient {
	t.Helper()
	for _, r := range m.Recipients {
		if r.Addr == addr {
			return r
		}
	}
	t.Fatalf("message %s has no recipient %s", m.ID, addr)
	return queue.Recipient{}
}

// fromSender keeps the messages sent with sender as envelope sender,
// leaving out delivery status notifications (null sender).
func fromSender(msgs []testutil.Received) []testutil.Received {
	var out []testutil.Received
	for _, m := range msgs {
		if m.From == sender {
			out = append(out, m)
		}
	}
	return out
}

// upstreamFor describes a testutil upstream for delivery.
func upstreamFor(u *testutil.Upstream, mode string, ca *testutil.CA) *route.Upstream {
	up := &route.Upstream{Name: "default", Host: u.Host, Port: u.Port, TLSMode: mode}
	if ca != nil {
		up.RootCAs = ca.Pool
	}
	return up
}

// serverTLS is an upstream's TLS config with a certificate for 127.0.0.1
// issued by ca.
func serverTLS(t *testing.T, ca *testutil.CA) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}, SessionTicketsDisabled: true}
}

func sameStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// recorder is a go-smtp backend for the cases testutil.Upstream does not
// cover: no AUTH at all, AUTH LOGIN only, counting concurrent sessions.
type recorder struct {
	// user and pass, when set, are offered and required as AUTH LOGIN (the
	// only mechanism); otherwise no AUTH is offered.
	user, pass string
	// dataDelay holds each DATA this long, so that deliveries overlap.
	dataDelay time.Duration

	mu       sync.Mutex
	open     int // sessions open now
	maxOpen  int
	sessions int
	mails    int // MAIL commands seen
	helos    []string
	authMech []string
	received []testutil.Received
}

func (b *recorder) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open++
	b.sessions++
	b.maxOpen = max(b.maxOpen, b.open)
	b.helos = append(b.helos, c.Hostname())
	s := &recSession{b: b}
	if b.user != "" {
		return &loginSession{s}, nil
	}
	return s, nil
}

func (b *recorder) stats() (open, maxOpen, sessions, mails int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.maxOpen, b.sessions, b.mails
}

func (b *recorder) messages() []testutil.Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]testutil.Received(nil), b.received...)
}

// recSession offers no AUTH (it does not implement smtp.AuthSession).
type recSession struct {
	b    *recorder
	user string
	msg  testutil.Received
}

func (s *recSession) Mail(from string, _ *smtp.MailOptions) error {
	s.b.mu.Lock()
	s.b.mails++
	s.b.mu.Unlock()
	if s.b.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.msg = testutil.Received{From: from, User: s.user}
	return nil
}

func (s *recSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *recSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	time.Sleep(s.b.dataDelay)
	s.msg.Data = data
	s.b.mu.Lock()
	s.b.received = append(s.b.received, s.msg)
	s.b.mu.Unlock()
	return nil
}

func (s *recSession) Reset() { s.msg = testutil.Received{} }

func (s *recSession) Logout() error {
	s.b.mu.Lock()
	s.b.open--
	s.b.mu.Unlock()
	return nil
}

// loginSession offers AUTH LOGIN and nothing else.
type loginSession struct{ *recSession }

func (s *loginSession) AuthMechanisms() []string { return []string{sasl.Login} }

func (s *loginSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Login {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return &loginServer{check: func(user, pass string) error {
		if user != s.b.user || pass != s.b.pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		s.b.mu.Lock()
		s.b.authMech = append(s.b.authMech, mech)
		s.b.mu.Unlock()
		return nil
	}}, nil
}

// loginServer is the server side of SASL LOGIN: "Username:" (skipped when
// the client sent the user name as initial response), then "Password:".
type loginServer struct {
	step  int
	user  string
	check func(user, pass string) error
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if len(response) == 0 {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, fmt.Errorf("unexpected LOGIN response")
}

// serve runs a go-smtp server for backend on 127.0.0.1 until the test ends.
// tlsConfig, when set, is offered as STARTTLS (or used for the whole
// connection when implicit is set).
func serve(t *testing.T, backend smtp.Backend, tlsConfig *tls.Config, implicit bool, tweak func(*smtp.Server)) (host string, port int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(backend)
	srv.Domain = "upstream.test"
	srv.TLSConfig = tlsConfig
	srv.ErrorLog = discard{}
	if tweak != nil {
		tweak(srv)
	}
	host, p, _ := net.SplitHostPort(l.Addr().String())
	port, _ = strconv.Atoi(p)
	if implicit {
		l = tls.NewListener(l, tlsConfig)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return host, port
}

type discard struct{}

func (discard) Printf(string, ...any) {}
func (discard) Println(...any)        {}

func TestPerRecipientOutcomes(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Rcpt: func(to string) error {
			if to == "nobody@example.net" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
			}
			return nil
		},
	})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{})

	m := add(t, q, body, "bob@example.net", "nobody@example.net")
	got := waitFor(t, q, m.ID, "finished", finished)

	bob := recipient(t, got, "bob@example.net")
	if bob.Status != queue.Delivered || !strings.HasPrefix(bob.Reply, "250 ") {
		t.Errorf("bob: status %s, reply %q; want delivered with the upstream's 250", bob.Status, bob.Reply)
	}
	nobody := recipient(t, got, "nobody@example.net")
	if nobody.Status != queue.Failed || nobody.Reply != "550 5.1.1 no such user here" {
		t.Errorf("nobody: status %s, reply %q; want failed with %q", nobody.Status, nobody.Reply, "550 5.1.1 no such user here")
	}
	if bob.Attempts != 1 || nobody.Attempts != 1 || len(got.Attempts) != 1 {
		t.Fatalf("attempts: bob %d, nobody %d, history %d; want 1 each", bob.Attempts, nobody.Attempts, len(got.Attempts))
	}
	// The history does not call an attempt with a refused recipient "ok".
	if r, want := got.Attempts[0].Result, "1 delivered, 1 failed, 0 deferred: 550 5.1.1 no such user here"; r != want {
		t.Errorf("attempt recorded as %q, want %q", r, want)
	}
	msgs := fromSender(up.Messages())
	if len(msgs) != 1 {
		t.Fatalf("upstream got %d copies of the message, want 1", len(msgs))
	}
	if !sameStrings(msgs[0].To, []string{"bob@example.net"}) || string(msgs[0].Data) != body {
		t.Errorf("upstream got RCPT %v, body %q; want [bob@example.net] and the exact body", msgs[0].To, msgs[0].Data)
	}
}

func TestAllRecipientsRefusedSendsNoData(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Rcpt: func(to string) error {
			if strings.HasPrefix(to, "nobody") {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{})

	m := add(t, q, body, "nobody1@example.net", "nobody2@example.net")
	got := waitFor(t, q, m.ID, "finished", finished)
	for _, r := range got.Recipients {
		if r.Status != queue.Failed || !strings.HasPrefix(r.Reply, "550 5.1.1") {
			t.Errorf("%s: status %s, reply %q; want failed with the 550", r.Addr, r.Status, r.Reply)
		}
	}
	if msgs := fromSender(up.Messages()); len(msgs) != 0 {
		t.Errorf("upstream received the message %d times with no recipient accepted", len(msgs))
	}
}

func TestPermanentDataRefusalFailsEveryRecipient(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Data: func(data []byte) error {
			if bytes.Equal(data, []byte(body)) { // not the notification to the sender
				return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}
			}
			return nil
		},
	})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{})

	m := add(t, q, body, "bob@example.net", "carol@example.net")
	got := waitFor(t, q, m.ID, "finished", finished)
	for _, r := range got.Recipients {
		if r.Status != queue.Failed || r.Reply != "554 5.6.0 content rejected" {
			t.Errorf("%s: status %s, reply %q; want failed with %q", r.Addr, r.Status, r.Reply, "554 5.6.0 content rejected")
		}
	}
}

func TestTemporaryFailureIsRetried(t *testing.T) {
	var calls atomic.Int32
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Data: func([]byte) error {
			if calls.Add(1) == 1 {
				return testutil.ErrTemporary
			}
			return nil
		},
	})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{
		RetryDelay: func(int) time.Duration { return 50 * time.Millisecond },
	})

	m := add(t, q, body, "bob@example.net")
	msgs := up.Wait(t, 1, 5*time.Second)
	got := waitFor(t, q, m.ID, "finished", finished)

	if len(msgs) != 1 || string(msgs[0].Data) != body {
		t.Fatalf("upstream got %d messages (want 1 with the exact body)", len(msgs))
	}
	bob := recipient(t, got, "bob@example.net")
	if bob.Status != queue.Delivered || bob.Attempts != 2 {
		t.Errorf("bob: status %s after %d attempts; want delivered after 2", bob.Status, bob.Attempts)
	}
	if len(got.Attempts) != 2 {
		t.Fatalf("attempt history has %d entries, want 2: %s", len(got.Attempts), describe(got))
	}
	if r := got.Attempts[0].Result; !strings.HasPrefix(r, "451 4.3.0") {
		t.Errorf("first attempt recorded as %q, want the upstream's 451", r)
	}
	if r := got.Attempts[1].Result; r != "ok" {
		t.Errorf("second attempt recorded as %q, want ok", r)
	}
	if !got.Attempts[1].At.After(got.Attempts[0].At) {
		t.Errorf("attempt times not increasing: %v then %v", got.Attempts[0].At, got.Attempts[1].At)
	}
}

func TestTemporaryRecipientRefusalRetriesOnlyThatRecipient(t *testing.T) {
	var carolRefused atomic.Bool
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Rcpt: func(to string) error {
			if to == "carol@example.net" && carolRefused.CompareAndSwap(false, true) {
				return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
			}
			return nil
		},
	})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{
		RetryDelay: func(int) time.Duration { return 50 * time.Millisecond },
	})

	m := add(t, q, body, "bob@example.net", "carol@example.net")
	got := waitFor(t, q, m.ID, "finished", finished)

	msgs := fromSender(up.Messages())
	if len(msgs) != 2 {
		t.Fatalf("upstream got %d transactions, want 2 (bob first, then carol alone)", len(msgs))
	}
	if !sameStrings(msgs[0].To, []string{"bob@example.net"}) || !sameStrings(msgs[1].To, []string{"carol@example.net"}) {
		t.Errorf("upstream RCPTs: %v then %v; want [bob] then [carol] (no duplicate for bob)", msgs[0].To, msgs[1].To)
	}
	bob, carol := recipient(t, got, "bob@example.net"), recipient(t, got, "carol@example.net")
	if bob.Status != queue.Delivered || bob.Attempts != 1 {
		t.Errorf("bob: %s after %d attempts, want delivered after 1", bob.Status, bob.Attempts)
	}
	if carol.Status != queue.Delivered || carol.Attempts != 2 {
		t.Errorf("carol: %s after %d attempts, want delivered after 2", carol.Status, carol.Attempts)
	}
}

func TestDotLinesAreStuffed(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{})

	dotty := "Subject: dots\r\n\r\n" +
		".\r\n" + // would end DATA if not stuffed
		"..\r\n" +
		".leading dot\r\n" +
		"middle . dot\r\n" +
		". \r\n" +
		"\r\n.\r\n" +
		"last line\r\n"
	m := add(t, q, dotty, "bob@example.net")
	waitFor(t, q, m.ID, "finished", finished)

	msgs := up.Messages()
	if len(msgs) != 1 {
		t.Fatalf("upstream got %d messages, want exactly 1", len(msgs))
	}
	if string(msgs[0].Data) != dotty {
		t.Errorf("upstream got body\n%q\nwant\n%q", msgs[0].Data, dotty)
	}
	if r := recipient(t, waitFor(t, q, m.ID, "finished", finished), "bob@example.net"); r.Status != queue.Delivered {
		t.Errorf("bob: %s (%q), want delivered", r.Status, r.Reply)
	}
}

func TestUnknownRouteIsATemporaryFailure(t *testing.T) {
	q := newQueue(t)
	startDelivery(t, q, routes{}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	bob := recipient(t, got, "bob@example.net")
	if bob.Status != queue.Queued || !strings.Contains(bob.Reply, "no upstream configured") {
		t.Errorf("bob: status %s, reply %q; want queued with the router's error", bob.Status, bob.Reply)
	}
}

// A message leased by a worker that is still waiting for a connection slot
// when delivery stops was not attempted: nothing may be recorded against it.
func TestShutdownWhileWaitingForAConnectionRecordsNoAttempt(t *testing.T) {
	inData := make(chan struct{}, 1)
	unblock := make(chan struct{})
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Data: func([]byte) error {
			inData <- struct{}{}
			<-unblock
			return nil
		},
	})
	q := newQueue(t)
	stop := startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{
		Workers: 2, ConnectionsPerUpstream: 1,
	})

	first := add(t, q, body, "bob@example.net")
	select {
	case <-inData:
	case <-time.After(5 * time.Second):
		t.Fatal("first message never reached DATA")
	}
	second := add(t, q, body, "carol@example.net")
	deadline := time.Now().Add(5 * time.Second)
	for q.Stats().Leased < 2 {
		if time.Now().After(deadline) {
			t.Fatal("second message was never leased")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the second worker block in the pool
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(unblock)
	}()
	stop()

	if got, _ := q.Get(first.ID); recipient(t, got, "bob@example.net").Status != queue.Delivered {
		t.Errorf("the attempt in flight at shutdown was not completed: %s", describe(got))
	}
	got, err := q.Get(second.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := recipient(t, got, "carol@example.net"); r.Attempts != 0 || r.Reply != "" || len(got.Attempts) != 0 {
		t.Errorf("shutdown counted as a delivery attempt: %s", describe(got))
	}
}
