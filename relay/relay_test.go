package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/auth"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/store"
)

// memSpool records what the relay queues; failing makes Add fail.
type memSpool struct {
	mu      sync.Mutex
	msgs    []*queue.Message
	bodies  [][]byte
	failing bool
}

func (s *memSpool) Add(m *queue.Message, body []byte, _ ...queue.TxHook) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("disk on fire")
	}
	s.msgs = append(s.msgs, m)
	s.bodies = append(s.bodies, body)
	return nil
}

func (s *memSpool) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

type harness struct {
	implicitAddr, starttlsAddr string
	clientTLS                  *tls.Config
	spool                      *memSpool
	users                      *auth.Store
	backend                    *Backend
}

const (
	alice    = "alice@example.com"
	alicePw  = "correct horse battery"
	testHost = "relay.test"
)

func startRelay(t *testing.T, tweak func(*Options)) *harness {
	t.Helper()
	ca := testutil.NewCA(t)
	cert := ca.Issue(t, testHost, "127.0.0.1")
	db := testutil.OpenDB(t)
	users, err := auth.NewStore(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	users.SetHashCost(4)
	if _, err := users.Add(alice, alicePw, []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	spool := &memSpool{}
	opts := Options{
		Hostname: testHost, Users: users, Spool: spool,
		MaxMessageBytes: 64 << 10, MaxRecipients: 5, MaxLineLength: 2000,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	}
	if tweak != nil {
		tweak(&opts)
	}
	b := New(opts)
	tlsConfig := ServerTLSConfig(cert)
	h := &harness{spool: spool, users: users, clientTLS: &tls.Config{RootCAs: ca.Pool, ServerName: testHost}}
	for _, implicit := range []bool{true, false} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if implicit {
			h.implicitAddr = l.Addr().String()
		} else {
			h.starttlsAddr = l.Addr().String()
		}
		go b.Serve(l, tlsConfig, implicit)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	h.backend = b
	return h
}

// dial connects to one listener, securing the connection as a client of
// that kind of listener would.
func (h *harness) dial(t *testing.T, implicit bool) *smtp.Client {
	t.Helper()
	var c *smtp.Client
	var err error
	if implicit {
		c, err = smtp.DialTLS(h.implicitAddr, h.clientTLS)
	} else {
		c, err = smtp.DialStartTLS(h.starttlsAddr, h.clientTLS)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (h *harness) login(t *testing.T, implicit bool) *smtp.Client {
	t.Helper()
	c := h.dial(t, implicit)
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePw)); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	return c
}

func send(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}

func wantCode(t *testing.T, err error, code int, enhanced smtp.EnhancedCode, text string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want SMTP error %d", err, code)
	}
	if se.Code != code || se.EnhancedCode != enhanced || !strings.Contains(se.Message, text) {
		t.Fatalf("got %d %v %q, want %d %v containing %q", se.Code, se.EnhancedCode, se.Message, code, enhanced, text)
	}
}

const simpleMessage = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello Bob.\r\n"

func TestSubmissionOnBothListeners(t *testing.T) {
	h := startRelay(t, nil)
	for _, implicit := range []bool{true, false} {
		c := h.login(t, implicit)
		if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
			t.Fatalf("implicit=%v: %v", implicit, err)
		}
	}
	if h.spool.count() != 2 {
		t.Fatalf("queued %d messages, want 2", h.spool.count())
	}
	m, body := h.spool.msgs[0], string(h.spool.bodies[0])
	if m.User != alice || m.From != alice || len(m.Recipients) != 1 || m.Recipients[0].Addr != "bob@example.net" || m.Recipients[0].Status != queue.Queued {
		t.Errorf("queued envelope = %+v", m)
	}
	for _, want := range []string{"Received: from ", "with ESMTPSA id " + m.ID, "Message-ID: <" + m.ID + "@relay.test>", "Date: ", "\r\n\r\nHello Bob.\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("queued body lacks %q:\n%s", want, body)
		}
	}
}

func TestQueuedReplyNamesTheQueueID(t *testing.T) {
	h := startRelay(t, nil)
	conn := h.rawLogin(t)
	conn.cmd(t, "MAIL FROM:<alice@example.com>", 250)
	conn.cmd(t, "RCPT TO:<bob@example.net>", 250)
	conn.cmd(t, "DATA", 354)
	line := conn.cmd(t, simpleMessage+".", 250)
	if want := "2.0.0 Ok: queued as " + h.spool.msgs[0].ID; line != want {
		t.Fatalf("reply %q, want %q", line, want)
	}
}

func TestAuthLoginMechanism(t *testing.T) {
	h := startRelay(t, nil)
	c := h.dial(t, false)
	if err := c.Auth(sasl.NewLoginClient(alice, alicePw)); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
		t.Fatal(err)
	}
	c2 := h.dial(t, true)
	wantCode(t, c2.Auth(sasl.NewLoginClient(alice, "wrong password")), 535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed")
}

func TestAuthBeforeStartTLSRefused(t *testing.T) {
	h := startRelay(t, nil)
	conn, err := net.Dial("tcp", h.starttlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	id, _ := tp.Cmd("EHLO client.test")
	tp.StartResponse(id)
	_, ehlo, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
		t.Fatalf("EHLO before TLS must offer STARTTLS and no AUTH:\n%s", ehlo)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + alicePw))
	id, _ = tp.Cmd("AUTH PLAIN %s", creds)
	tp.StartResponse(id)
	code, msg, _ := tp.ReadResponse(0)
	tp.EndResponse(id)
	if code != 530 || !strings.HasPrefix(msg, "5.7.0 ") {
		t.Fatalf("AUTH before STARTTLS: got %d %s, want 530 5.7.0", code, msg)
	}
	id, _ = tp.Cmd("MAIL FROM:<alice@example.com>")
	tp.StartResponse(id)
	code, msg, _ = tp.ReadResponse(0)
	tp.EndResponse(id)
	if code != 530 {
		t.Fatalf("MAIL without AUTH: got %d %s, want 530", code, msg)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	h := startRelay(t, nil)
	for _, tc := range []struct{ user, pass string }{{alice, "not the password"}, {"nobody@example.com", alicePw}} {
		c := h.dial(t, true)
		wantCode(t, c.Auth(sasl.NewPlainClient("", tc.user, tc.pass)), 535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed")
	}
}

func TestRelayWithoutAuthRefused(t *testing.T) {
	h := startRelay(t, nil)
	for _, implicit := range []bool{true, false} {
		c := h.dial(t, implicit)
		err := send(c, alice, []string{"victim@example.net"}, simpleMessage)
		wantCode(t, err, 530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
	}
	if h.spool.count() != 0 {
		t.Fatal("an unauthenticated message was queued")
	}
}

func TestForeignEnvelopeFromRefused(t *testing.T) {
	h := startRelay(t, nil)
	c := h.login(t, false)
	err := send(c, "ceo@bank.example", []string{"bob@example.net"}, simpleMessage)
	wantCode(t, err, 550, smtp.EnhancedCode{5, 7, 1}, "From <ceo@bank.example> is not allowed for user <alice@example.com>")
}

func TestForeignHeaderFromRefused(t *testing.T) {
	h := startRelay(t, nil)
	c := h.login(t, true)
	msg := "From: CEO <ceo@bank.example>\r\nSubject: wire money\r\n\r\nnow\r\n"
	err := send(c, alice, []string{"bob@example.net"}, msg)
	wantCode(t, err, 550, smtp.EnhancedCode{5, 7, 1}, "From <ceo@bank.example> is not allowed for user <alice@example.com>")
	if h.spool.count() != 0 {
		t.Fatal("message with a foreign From was queued")
	}
}

func TestAllowedDomainAccepted(t *testing.T) {
	h := startRelay(t, nil)
	c := h.login(t, true)
	msg := "From: Support <support@EXAMPLE.org>\r\n\r\nhi\r\n"
	if err := send(c, "noreply@example.org", []string{"bob@example.net"}, msg); err != nil {
		t.Fatal(err)
	}
}

func TestOversizeRefused(t *testing.T) {
	h := startRelay(t, nil)
	c := h.login(t, true)
	big := simpleMessage + strings.Repeat("x", 100) + strings.Repeat("\r\n"+strings.Repeat("y", 998), 70)
	err := send(c, alice, []string{"bob@example.net"}, big)
	wantCode(t, err, 552, smtp.EnhancedCode{5, 3, 4}, "too large")
	if h.spool.count() != 0 {
		t.Fatal("oversize message was queued")
	}
}

func TestTooManyRecipients(t *testing.T) {
	h := startRelay(t, nil)
	c := h.login(t, true)
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := c.Rcpt(fmt.Sprintf("r%d@example.net", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, c.Rcpt("r6@example.net", nil), 452, smtp.EnhancedCode{4, 5, 3}, "recipients")
}

func TestMissingFromHeaderRefused(t *testing.T) {
	h := startRelay(t, nil)
	c := h.login(t, true)
	wantCode(t, send(c, alice, []string{"bob@example.net"}, "Subject: x\r\n\r\nbody\r\n"), 550, smtp.EnhancedCode{5, 6, 0}, "no From header")
}

func TestExistingMessageIDAndDateKept(t *testing.T) {
	h := startRelay(t, nil)
	c := h.login(t, true)
	msg := "From: alice@example.com\r\nMessage-ID: <own@id>\r\nDate: Mon, 2 Jan 2006 15:04:05 +0000\r\n\r\nx\r\n"
	if err := send(c, alice, []string{"bob@example.net"}, msg); err != nil {
		t.Fatal(err)
	}
	body := string(h.spool.bodies[0])
	if strings.Count(body, "Message-ID:") != 1 || strings.Count(body, "Date:") != 1 || h.spool.msgs[0].MessageID != "<own@id>" {
		t.Fatalf("client's Message-ID/Date not kept as the only ones:\n%s", body)
	}
}

func TestQueueFailureIsTemporary(t *testing.T) {
	h := startRelay(t, nil)
	h.spool.failing = true
	c := h.login(t, true)
	err := send(c, alice, []string{"bob@example.net"}, simpleMessage)
	wantCode(t, err, 452, smtp.EnhancedCode{4, 3, 1}, "try again")
	if strings.Contains(err.Error(), "disk on fire") {
		t.Fatal("internal error text leaked to the client")
	}
}

// rawConn speaks SMTP byte for byte, for tests that must send what a
// well-behaved client library never would.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func (h *harness) rawLogin(t *testing.T) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", h.implicitAddr, h.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{c: c, br: bufio.NewReader(c)}
	rc.expect(t, 220)
	rc.cmd(t, "EHLO client.test", 250)
	creds := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + alicePw))
	rc.cmd(t, "AUTH PLAIN "+creds, 235)
	return rc
}

func (rc *rawConn) write(t *testing.T, s string) {
	t.Helper()
	if _, err := rc.c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// expect reads one (possibly multi-line) reply and returns its last line
// without the code.
func (rc *rawConn) expect(t *testing.T, code int) string {
	t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := rc.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading reply: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			t.Fatalf("short reply %q", line)
		}
		if line[3] == '-' {
			continue
		}
		if line[:3] != fmt.Sprint(code) {
			t.Fatalf("got reply %q, want %d", line, code)
		}
		return line[4:]
	}
}

func (rc *rawConn) cmd(t *testing.T, line string, code int) string {
	t.Helper()
	rc.write(t, line+"\r\n")
	return rc.expect(t, code)
}

// The December 2023 SMTP smuggling advisories: an end-of-data marker with
// bare line endings, followed by a second transaction. go-smtp only ends
// DATA at CRLF.CRLF, so these stay inside the first message; the relay
// must then make sure no bare line ending survives to the upstream, where
// a lenient server could read the marker.
var smugglingPayloads = []string{"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\n", "\r\n.\r", "\r.\n", "\n.\r"}

func TestSmugglingPayloadsNormalized(t *testing.T) {
	h := startRelay(t, nil)
	for i, p := range smugglingPayloads {
		rc := h.rawLogin(t)
		rc.cmd(t, "MAIL FROM:<alice@example.com>", 250)
		rc.cmd(t, "RCPT TO:<bob@example.net>", 250)
		rc.cmd(t, "DATA", 354)
		smuggled := "MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nFrom: ceo@bank.example\r\n\r\nsmuggled\r\n"
		rc.write(t, "From: alice@example.com\r\n\r\nfirst"+p+smuggled+".\r\n")
		rc.expect(t, 250)
		if n := h.spool.count(); n != i+1 {
			t.Fatalf("payload %q: %d messages queued, want %d", p, n, i+1)
		}
		body := h.spool.bodies[i]
		for j := 0; j < len(body); j++ {
			if (body[j] == '\n' && (j == 0 || body[j-1] != '\r')) || (body[j] == '\r' && (j+1 == len(body) || body[j+1] != '\n')) {
				t.Fatalf("payload %q: queued body keeps a bare line ending at %d: %q", p, j, body)
			}
		}
	}
}

func TestBareLineEndingsRejectedWhenConfigured(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.RejectBareLineEndings = true })
	rc := h.rawLogin(t)
	rc.cmd(t, "MAIL FROM:<alice@example.com>", 250)
	rc.cmd(t, "RCPT TO:<bob@example.net>", 250)
	rc.cmd(t, "DATA", 354)
	rc.write(t, "From: alice@example.com\r\n\r\nfirst\n.\nMAIL FROM:<x@y.z>\r\n.\r\n")
	if line := rc.expect(t, 550); !strings.Contains(line, "5.6.0") || !strings.Contains(line, "bare CR or LF") {
		t.Fatalf("reply %q", line)
	}
	if h.spool.count() != 0 {
		t.Fatal("message with bare LF was queued despite reject")
	}
}

func TestNormalizeLineEndings(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\nb\r\n": "a\r\nb\r\n",
		"a\nb\n":     "a\r\nb\r\n",
		"a\rb\r":     "a\r\nb\r\n",
		"a\r\r\nb":   "a\r\n\r\nb",
		"\n.\n":      "\r\n.\r\n",
	} {
		got, bare := normalizeLineEndings([]byte(in))
		if string(got) != want || bare != (in != want) {
			t.Errorf("normalize(%q) = %q, %v; want %q", in, got, bare, want)
		}
	}
}
