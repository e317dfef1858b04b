package delivery_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/route"
)

func TestDeliversOverSTARTTLSWithAuth(t *testing.T) {
	ca := testutil.NewCA(t)
	// With TLS set, the upstream refuses AUTH before STARTTLS, so a
	// message recorded with its AUTH user came over TLS.
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS: serverTLS(t, ca), Username: "relay-user", Password: "s3cret pass",
	})
	u := upstreamFor(up, "starttls", ca)
	u.Username, u.Password = "relay-user", "s3cret pass"
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{})

	m := add(t, q, body, "bob@example.net", "carol@example.net")
	msgs := up.Wait(t, 1, 5*time.Second)
	got := waitFor(t, q, m.ID, "finished", finished)

	if len(msgs) != 1 {
		t.Fatalf("upstream got %d messages, want 1", len(msgs))
	}
	rx := msgs[0]
	if rx.From != sender || !sameStrings(rx.To, []string{"bob@example.net", "carol@example.net"}) {
		t.Errorf("upstream envelope: MAIL %q RCPT %v; want %q and [bob carol]", rx.From, rx.To, sender)
	}
	if !bytes.Equal(rx.Data, []byte(body)) {
		t.Errorf("upstream body %q, want %q", rx.Data, body)
	}
	if rx.User != "relay-user" {
		t.Errorf("upstream saw AUTH user %q, want relay-user", rx.User)
	}
	for _, r := range got.Recipients {
		if r.Status != queue.Delivered || !strings.HasPrefix(r.Reply, "250 ") || r.Attempts != 1 {
			t.Errorf("%s: %s after %d attempts, reply %q; want delivered with a 250", r.Addr, r.Status, r.Attempts, r.Reply)
		}
	}
	if len(got.Attempts) != 1 || got.Attempts[0].Upstream != "default" || got.Attempts[0].Result != "ok" {
		t.Errorf("attempt history %+v, want one ok attempt through upstream \"default\"", got.Attempts)
	}
	if got.Finished.IsZero() || !got.NextAttempt.IsZero() {
		t.Errorf("finished message: Finished %v, NextAttempt %v; want set and zero", got.Finished, got.NextAttempt)
	}
}

func TestDeliversOverImplicitTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS: serverTLS(t, ca), Implicit: true, Username: "relay-user", Password: "pw",
	})
	u := upstreamFor(up, "implicit", ca)
	u.Username, u.Password = "relay-user", "pw"
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	msgs := up.Wait(t, 1, 5*time.Second)
	got := waitFor(t, q, m.ID, "finished", finished)
	if string(msgs[0].Data) != body || msgs[0].User != "relay-user" || !sameStrings(msgs[0].To, []string{"bob@example.net"}) {
		t.Errorf("upstream got %+v", msgs[0])
	}
	if r := recipient(t, got, "bob@example.net"); r.Status != queue.Delivered {
		t.Errorf("bob: %s (%q), want delivered", r.Status, r.Reply)
	}
}

func TestRefusesUpstreamCertificateFromUnknownCA(t *testing.T) {
	trusted, other := testutil.NewCA(t), testutil.NewCA(t)
	for _, tc := range []struct {
		name, mode string
		cert       *testutil.CA
		names      []string
		want       string
	}{
		{"STARTTLS, unknown CA", "starttls", other, []string{"127.0.0.1"}, "unknown authority"},
		{"implicit TLS, unknown CA", "implicit", other, []string{"127.0.0.1"}, "unknown authority"},
		{"STARTTLS, trusted CA but another name", "starttls", trusted, []string{"mx.elsewhere.test"}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsConfig := serverTLS(t, tc.cert)
			tlsConfig.Certificates = []tls.Certificate{tc.cert.Issue(t, tc.names...)}
			up := testutil.StartUpstream(t, testutil.UpstreamOptions{
				TLS: tlsConfig, Implicit: tc.mode == "implicit", Username: "relay-user", Password: "pw",
			})
			u := upstreamFor(up, tc.mode, trusted)
			u.Username, u.Password = "relay-user", "pw"
			q := newQueue(t)
			startDelivery(t, q, routes{"": u}, delivery.Options{})

			m := add(t, q, body, "bob@example.net")
			got := waitFor(t, q, m.ID, "attempted", attempted(1))
			bob := recipient(t, got, "bob@example.net")
			if bob.Status != queue.Queued {
				t.Errorf("bob: %s, want still queued (a certificate problem is temporary)", bob.Status)
			}
			if !strings.Contains(bob.Reply, "certificate") || !strings.Contains(bob.Reply, tc.want) {
				t.Errorf("bob's reply %q does not explain the certificate problem (%q)", bob.Reply, tc.want)
			}
			if n := len(up.Messages()); n != 0 {
				t.Errorf("upstream received %d messages over an unverified connection", n)
			}
		})
	}
}

func TestFailsClosedWhenSTARTTLSNotOffered(t *testing.T) {
	// Without TLS the upstream would accept AUTH PLAIN in the clear; the
	// tap records every byte the relay sends it.
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{Username: "relay-user", Password: "hunter2-secret"})
	wire := startTap(t, up.Addr())
	u := &route.Upstream{Name: "default", Host: wire.host, Port: wire.port, TLSMode: "starttls",
		Username: "relay-user", Password: "hunter2-secret"}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	bob := recipient(t, got, "bob@example.net")
	if bob.Status != queue.Queued {
		t.Errorf("bob: %s, want still queued", bob.Status)
	}
	if bob.Reply != delivery.ErrNoTLS.Error() || !strings.Contains(bob.Reply, "does not offer STARTTLS") {
		t.Errorf("bob's reply %q, want %q", bob.Reply, delivery.ErrNoTLS)
	}
	if n := len(up.Messages()); n != 0 {
		t.Errorf("upstream received %d messages in the clear", n)
	}
	sent := wire.sent()
	if !strings.Contains(sent, "EHLO") {
		t.Fatalf("the relay never talked to the upstream (sent %q); the test proves nothing", sent)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00relay-user\x00hunter2-secret"))
	for _, forbidden := range []string{"MAIL FROM", "AUTH", "hunter2-secret", plain, "Hello Bob"} {
		if strings.Contains(sent, forbidden) {
			t.Errorf("the relay sent %q in the clear: %q", forbidden, sent)
		}
	}
}

func TestFailsClosedWhenAuthNotOffered(t *testing.T) {
	ca := testutil.NewCA(t)
	b := &recorder{} // no AUTH offered
	host, port := serve(t, b, serverTLS(t, ca), false, nil)
	u := &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "starttls",
		Username: "relay-user", Password: "pw", RootCAs: ca.Pool}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	bob := recipient(t, got, "bob@example.net")
	if bob.Status != queue.Queued || bob.Reply != delivery.ErrNoAuth.Error() {
		t.Errorf("bob: %s, reply %q; want queued with %q", bob.Status, bob.Reply, delivery.ErrNoAuth)
	}
	if _, _, sessions, mails := b.stats(); sessions == 0 || mails != 0 {
		t.Errorf("upstream saw %d sessions and %d MAIL commands; want a session and no MAIL", sessions, mails)
	}
	if n := len(b.messages()); n != 0 {
		t.Errorf("upstream received %d messages without authentication", n)
	}
}

func TestRejectedCredentialsAreATemporaryFailure(t *testing.T) {
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{TLS: serverTLS(t, ca), Username: "relay-user", Password: "new"})
	u := upstreamFor(up, "starttls", ca)
	u.Username, u.Password = "relay-user", "old"
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	bob := recipient(t, got, "bob@example.net")
	// A smarthost refusing our login is the operator's problem, never the
	// recipient's: no bounce for a wrong or rotated password.
	if bob.Status != queue.Queued || !strings.HasPrefix(bob.Reply, "535 5.7.8") {
		t.Errorf("bob: %s, reply %q; want queued with the upstream's 535", bob.Status, bob.Reply)
	}
	if strings.Contains(bob.Reply, "old") {
		t.Errorf("reply %q may contain the password", bob.Reply)
	}
}

func TestLoginOnlyUpstream(t *testing.T) {
	ca := testutil.NewCA(t)
	b := &recorder{user: "relay-user", pass: "Pa55 word"}
	host, port := serve(t, b, serverTLS(t, ca), false, nil)
	u := &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "starttls",
		Username: "relay-user", Password: "Pa55 word", RootCAs: ca.Pool}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "finished", finished)
	if r := recipient(t, got, "bob@example.net"); r.Status != queue.Delivered {
		t.Fatalf("bob: %s (%q), want delivered", r.Status, r.Reply)
	}
	msgs := b.messages()
	if len(msgs) != 1 || msgs[0].User != "relay-user" || string(msgs[0].Data) != body {
		t.Fatalf("upstream got %+v, want one message from AUTH user relay-user", msgs)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !sameStrings(b.authMech, []string{"LOGIN"}) {
		t.Errorf("authenticated with %v, want [LOGIN]", b.authMech)
	}
}

func TestEHLONamesTheRelayBeforeAndAfterSTARTTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	b := &recorder{}
	host, port := serve(t, b, serverTLS(t, ca), false, nil)
	u := &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "starttls", RootCAs: ca.Pool}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{LocalName: "relay.test"})

	m := add(t, q, body, "bob@example.net")
	waitFor(t, q, m.ID, "finished", finished)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.helos) != 2 {
		t.Fatalf("upstream saw EHLO names %v, want two (before and after STARTTLS)", b.helos)
	}
	for _, name := range b.helos {
		if name != "relay.test" {
			t.Errorf("upstream saw EHLO names %v, want relay.test (Options.LocalName) in each", b.helos)
			break
		}
	}
}

func TestDeadUpstreamDoesNotStallTheWorker(t *testing.T) {
	for _, tc := range []struct {
		name, mode, greeting string
	}{
		{"accepts and never greets", "starttls", ""},
		{"never completes the implicit TLS handshake", "implicit", ""},
		{"greets and never answers EHLO", "starttls", "220 stuck.test ESMTP\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port := holdingListener(t, tc.greeting)
			u := &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: tc.mode,
				Username: "relay-user", Password: "pw", RootCAs: testutil.NewCA(t).Pool}
			q := newQueue(t)
			// A command timeout far above the connect timeout: only the
			// latter may end the attempt.
			startDelivery(t, q, routes{"": u}, delivery.Options{
				ConnectTimeout: 300 * time.Millisecond, CommandTimeout: time.Minute,
			})

			m := add(t, q, body, "bob@example.net")
			got := waitFor(t, q, m.ID, "attempted", attempted(1))
			bob := recipient(t, got, "bob@example.net")
			if bob.Status != queue.Queued || bob.Attempts != 1 {
				t.Errorf("bob: %s after %d attempts, want queued after 1", bob.Status, bob.Attempts)
			}
			if !strings.Contains(bob.Reply, "timeout") {
				t.Errorf("bob's reply %q does not say the upstream timed out", bob.Reply)
			}
			if d := got.Attempts[0].Duration; d > 30*time.Second {
				t.Errorf("attempt took %s: bounded by the command timeout, not the connect timeout", d)
			}
		})
	}
}

func TestUpstreamThatStopsReadingDuringDataDoesNotStallTheWorker(t *testing.T) {
	srv := startStallingServer(t)
	u := &route.Upstream{Name: "default", Host: srv.host, Port: srv.port, TLSMode: "none"}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{CommandTimeout: 500 * time.Millisecond})
	// Runs before startDelivery's cleanup (cleanups run last-in first-out),
	// so a stuck worker is freed and Run can return.
	t.Cleanup(srv.close)

	// Far more than the socket buffers on both ends can hold.
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 16<<10)
	m := add(t, q, big, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	if r := recipient(t, got, "bob@example.net"); r.Status != queue.Queued {
		t.Errorf("bob: %s (%q), want queued after a timeout", r.Status, r.Reply)
	}
}

// tap is a TCP proxy that records what clients send and counts their
// connections.
type tap struct {
	host     string
	port     int
	mu       sync.Mutex
	buf      bytes.Buffer
	accepted int
}

// connections counts the TCP connections made through the tap.
func (w *tap) connections() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.accepted
}

func (w *tap) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *tap) sent() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func startTap(t *testing.T, target string) *tap {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &tap{}
	w.host, w.port = splitAddr(t, l.Addr().String())
	var conns sync.WaitGroup
	t.Cleanup(func() { l.Close(); conns.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			w.mu.Lock()
			w.accepted++
			w.mu.Unlock()
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() {
					io.Copy(c, up)
					c.Close()
				}()
				io.Copy(io.MultiWriter(up, w), c)
			}()
		}
	}()
	return w
}

// holdingListener accepts connections, sends greeting (if any) and then
// neither reads nor writes: an upstream that is up but stuck.
func holdingListener(t *testing.T, greeting string) (host string, port int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			if greeting != "" {
				io.WriteString(c, greeting)
			}
		}
	}()
	return splitAddr(t, l.Addr().String())
}

// stallingServer speaks just enough SMTP to get to DATA, answers 354 and
// then stops reading.
type stallingServer struct {
	host string
	port int
	l    net.Listener
	once sync.Once
	quit chan struct{}
	wg   sync.WaitGroup
}

func startStallingServer(t *testing.T) *stallingServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallingServer{l: l, quit: make(chan struct{})}
	s.host, s.port = splitAddr(t, l.Addr().String())
	t.Cleanup(s.close)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			s.wg.Add(1)
			go s.handle(c)
		}
	}()
	return s
}

func (s *stallingServer) handle(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	go func() { <-s.quit; c.Close() }()
	r := bufio.NewReader(c)
	io.WriteString(c, "220 stall.test ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
		case strings.HasPrefix(cmd, "EHLO"):
			io.WriteString(c, "250-stall.test\r\n250 8BITMIME\r\n")
		case strings.HasPrefix(cmd, "DATA"):
			io.WriteString(c, "354 go ahead\r\n")
			<-s.quit // and never read the body
			return
		case strings.HasPrefix(cmd, "QUIT"):
			io.WriteString(c, "221 bye\r\n")
			return
		default:
			io.WriteString(c, "250 2.0.0 ok\r\n")
		}
	}
}

func (s *stallingServer) close() {
	s.once.Do(func() {
		close(s.quit)
		s.l.Close()
	})
	s.wg.Wait()
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return host, port
}
