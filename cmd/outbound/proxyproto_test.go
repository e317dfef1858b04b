package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

	"outbound/queue"
)

// testWait bounds every wait of these tests: generous, for a loaded CI
// machine; a passing test never comes near it.
const testWait = 30 * time.Second

// proxyTOML is a relay with both submission listeners, trusting PROXY
// headers from the given TOML list, at most one connection per client.
func proxyTOML(from string) string {
	return "[submission]\nimplicit_tls = \"127.0.0.1:0\"\nstarttls = \"127.0.0.1:0\"\n" +
		"max_connections_per_ip = 1\nproxy_protocol_from = " + from + "\n[admin]\nlisten = \"\"\n"
}

// dialWithHeader connects to addr and sends a PROXY header of version
// (1 or 2) that says the connection comes from client.
func dialWithHeader(t *testing.T, addr string, version byte, client string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testWait))
	h := &proxyproto.Header{Version: version, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP(client), Port: 40000},
		DestinationAddr: c.RemoteAddr().(*net.TCPAddr)}
	if _, err := h.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// firstLine reads the relay's first reply line on c ("" when c is closed
// without one).
func firstLine(t *testing.T, c net.Conn) string {
	t.Helper()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line != "" {
		t.Fatalf("partial line %q: %v", line, err)
	}
	return line
}

// Behind a trusted load balancer the per-address connection limit counts
// the client addresses the headers carry, v1 and v2 alike: a second
// connection from the same client is over the limit of one, one from
// another client is not.
func TestProxyProtocolLimitsCountTheClientAddressOfTheHeader(t *testing.T) {
	srv := startFromTOML(t, proxyTOML(`["127.0.0.1"]`))
	addr := srv.addrs["starttls"]

	if l := firstLine(t, dialWithHeader(t, addr, 1, "203.0.113.9")); !strings.HasPrefix(l, "220 ") {
		t.Fatalf("first client (v1 header): %q, want the greeting", l)
	}
	if l := firstLine(t, dialWithHeader(t, addr, 2, "203.0.113.9")); !strings.HasPrefix(l, "421 4.7.0") {
		t.Fatalf("same client again (v2 header): %q, want 421 4.7.0 (max_connections_per_ip = 1)", l)
	}
	if l := firstLine(t, dialWithHeader(t, addr, 2, "198.51.100.7")); !strings.HasPrefix(l, "220 ") {
		t.Fatalf("another client (v2 header): %q, want the greeting", l)
	}
}

// On the implicit-TLS listener the header comes before the TLS handshake,
// and the Received header of the queued message names the client, not the
// load balancer.
func TestProxyProtocolImplicitTLSReceivedNamesTheClient(t *testing.T) {
	srv := startFromTOML(t, proxyTOML(`["127.0.0.0/8"]`))
	srv.users.SetHashCost(4)
	if _, err := srv.users.Add("alice@example.org", "a long enough password", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		version byte
		client  string
	}{{1, "203.0.113.9"}, {2, "198.51.100.7"}} {
		conn := tls.Client(dialWithHeader(t, srv.addrs["implicit"], tc.version, tc.client), &tls.Config{InsecureSkipVerify: true})
		c := smtp.NewClient(conn)
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "a long enough password")); err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		subject := fmt.Sprintf("through a v%d header", tc.version)
		msg := "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
		if err := c.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(msg)); err != nil {
			t.Fatalf("v%d: %v", tc.version, err)
		}
		c.Close()
		body := queuedBody(t, srv, "Subject: "+subject)
		if !bytes.Contains(body, []byte("Received: from ")) || !bytes.Contains(body, []byte("(["+tc.client+"])")) {
			t.Errorf("v%d: the Received header does not name the client %s:\n%s", tc.version, tc.client, body)
		}
		if bytes.Contains(body, []byte("[127.0.0.1]")) {
			t.Errorf("v%d: the Received header names the load balancer:\n%s", tc.version, body)
		}
	}
}

// queuedBody is the body of the queued message that contains marker.
func queuedBody(t *testing.T, srv *server, marker string) []byte {
	t.Helper()
	msgs, err := srv.queue.List(func(*queue.Message) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if b, err := srv.queue.Body(m.ID); err == nil && bytes.Contains(b, []byte(marker)) {
			return b
		}
	}
	t.Fatalf("no queued message contains %q", marker)
	return nil
}

// A trusted address must send a header: a connection from it that starts
// with SMTP, or says nothing until the header timeout (read_timeout here),
// is closed without a greeting. The listener goes on serving.
func TestProxyProtocolTrustedSourceWithoutHeaderIsRefused(t *testing.T) {
	srv := startFromTOML(t, proxyTOML(`["127.0.0.1"]`))
	for _, kind := range []string{"starttls", "implicit"} {
		addr := srv.addrs[kind]
		c, err := net.DialTimeout("tcp", addr, testWait)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(testWait))
		io.WriteString(c, "EHLO client.example\r\n")
		got, _ := io.ReadAll(c)
		c.Close()
		if len(got) != 0 {
			t.Errorf("%s: a connection without a header got %q, want it closed unanswered", kind, got)
		}
		// The listener still serves connections with a header.
		if kind == "starttls" {
			if l := firstLine(t, dialWithHeader(t, addr, 1, "203.0.113.9")); !strings.HasPrefix(l, "220 ") {
				t.Errorf("after the refusal: %q, want the greeting", l)
			}
		}
	}
}

// A client that waits for the greeting, as SMTP clients do, gets none from
// a trusted address: the connection is closed at the header timeout.
func TestProxyProtocolTrustedSilentConnectionIsClosedAtTheTimeout(t *testing.T) {
	srv := startFromTOML(t, strings.Replace(proxyTOML(`["127.0.0.1"]`), "[submission]\n", "[submission]\nread_timeout = \"1s\"\n", 1))
	c, err := net.DialTimeout("tcp", srv.addrs["starttls"], testWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testWait))
	got, err := io.ReadAll(c)
	if len(got) != 0 || isTimeout(err) {
		t.Errorf("silent connection: got %q, %v; want it closed unanswered", got, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Without proxy_protocol_from, or from an address it does not list, a
// header is not honoured: the session refuses it as a bad command, and the
// connection counts as the load balancer's (a second one, whatever client
// its header names, is over the limit of one per address).
func TestProxyProtocolHeaderFromUntrustedSourceIsNotHonoured(t *testing.T) {
	for _, from := range []string{`[]`, `["192.0.2.1", "10.0.0.0/8"]`} {
		srv := startFromTOML(t, proxyTOML(from))
		c := dialWithHeader(t, srv.addrs["starttls"], 1, "203.0.113.9")
		r := bufio.NewReader(c)
		greeting, _ := r.ReadString('\n')
		reply, _ := r.ReadString('\n')
		if !strings.HasPrefix(greeting, "220 ") || !strings.HasPrefix(reply, "5") {
			t.Errorf("proxy_protocol_from = %s: %q then %q, want the greeting then a 5xx refusal of the PROXY line", from, greeting, reply)
		}
		if l := firstLine(t, dialWithHeader(t, srv.addrs["starttls"], 1, "198.51.100.7")); !strings.HasPrefix(l, "421 4.7.0") {
			t.Errorf("proxy_protocol_from = %s: a second connection from 127.0.0.1 got %q, want 421 4.7.0", from, l)
		}
	}
}

// Headers are read beside Accept: a trusted connection that sends nothing
// does not hold up the next one, and when it ends without a header the
// log names the load balancer's address.
func TestProxyProtocolSilentConnectionDoesNotHoldUpOthers(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := make(recordChan, 16)
	// The header timeout is far longer than the test waits.
	l, err := withProxyProtocol(raw, []string{"127.0.0.1"}, time.Hour, "starttls", slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	silent, err := net.DialTimeout("tcp", raw.Addr().String(), testWait)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	dialWithHeader(t, raw.Addr().String(), 2, "203.0.113.9")
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	select {
	case c := <-accepted:
		if got := c.RemoteAddr().String(); got != "203.0.113.9:40000" {
			t.Errorf("RemoteAddr %s, want the header's 203.0.113.9:40000", got)
		}
		c.Close()
	case <-time.After(testWait):
		t.Fatal("the connection with a header waited behind the silent one")
	}

	silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	for {
		select {
		case r := <-logs:
			attrs := map[string]string{}
			r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
			if r.Level != slog.LevelInfo || attrs["proxy"] != silent.LocalAddr().String() {
				continue
			}
			if attrs["kind"] != "starttls" || attrs["err"] == "" {
				t.Errorf("refusal logged as %q %v", r.Message, attrs)
			}
			return
		case <-ctx.Done():
			t.Fatal("no info log line names the proxy of the connection closed without a header")
		}
	}
}

// A listener closed while Accept waits returns net.ErrClosed, which the
// relay's Serve takes for a shutdown.
func TestProxyProtocolListenerCloseEndsAccept(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := withProxyProtocol(raw, []string{"127.0.0.1"}, time.Minute, "implicit", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(testWait):
		t.Fatal("Accept still waits after Close")
	}
}

// recordChan is a slog.Handler that sends every record down the channel.
type recordChan chan slog.Record

func (h recordChan) Enabled(context.Context, slog.Level) bool { return true }
func (h recordChan) Handle(_ context.Context, r slog.Record) error {
	h <- r.Clone()
	return nil
}
func (h recordChan) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordChan) WithGroup(string) slog.Handler      { return h }
