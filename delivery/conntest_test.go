package delivery_test

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/route"
)

const (
	upUser = "apikey"
	upPass = "upstream-password-abc123"
)

// target points at up with the test CA trusted.
func target(up *testutil.Upstream, ca *testutil.CA, mode string) *route.Upstream {
	return &route.Upstream{Name: "test", Host: up.Host, Port: up.Port, TLSMode: mode, Username: upUser, Password: upPass,
		RootCAs: ca.Pool}
}

// connTest runs the connection test of up, each step bounded by timeout.
func connTest(up *route.Upstream, timeout time.Duration) delivery.ConnectionReport {
	return delivery.ConnectionTest(context.Background(), up, "relay.test", timeout)
}

func wantFailure(t *testing.T, rep delivery.ConnectionReport, step, errPart, hintPart string) {
	t.Helper()
	f := rep.Failed()
	if rep.OK || f == nil {
		t.Fatalf("test passed, want a failure at %s:\n%s", step, rep.String())
	}
	if f.Name != step || !strings.Contains(f.Error+" "+f.Reply, errPart) || !strings.Contains(f.Hint, hintPart) {
		t.Fatalf("failed at %s (error %q, reply %q, hint %q); want %s with %q and hint %q\n%s",
			f.Name, f.Error, f.Reply, f.Hint, step, errPart, hintPart, rep.String())
	}
}

func tlsUpstream(t *testing.T, ca *testutil.CA, implicit bool, names ...string) *testutil.Upstream {
	return testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS:      &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, names...)}},
		Implicit: implicit, Username: upUser, Password: upPass,
	})
}

func TestConnectionTestGoodSTARTTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1")
	rep := connTest(target(up, ca, "starttls"), 2*time.Second)
	if !rep.OK {
		t.Fatalf("want ok:\n%s", rep.String())
	}
	var names []string
	for _, s := range rep.Steps {
		if s.Status != "ok" {
			t.Fatalf("step %s: %s\n%s", s.Name, s.Status, rep.String())
		}
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "connect,greeting,ehlo,tls,auth,quit" {
		t.Fatalf("steps %s", got)
	}
	if strings.Contains(rep.String(), upPass) {
		t.Fatal("the report shows the password")
	}
}

func TestConnectionTestGoodImplicit(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, true, "127.0.0.1")
	if rep := connTest(target(up, ca, "implicit"), 2*time.Second); !rep.OK {
		t.Fatalf("want ok:\n%s", rep.String())
	}
}

func TestConnectionTestBadPassword(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1")
	tg := target(up, ca, "starttls")
	tg.Password = "wrong-password-000000"
	wantFailure(t, connTest(tg, 2*time.Second), "auth", "535", "username or password")
}

func TestConnectionTestNoTLSOffered(t *testing.T) {
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{Username: upUser, Password: upPass})
	wantFailure(t, connTest(target(up, ca, "starttls"), 2*time.Second), "tls", "does not offer STARTTLS", "STARTTLS")
}

// Implicit TLS against a plain (STARTTLS) port: the server's greeting is
// not a TLS record.
func TestConnectionTestImplicitOnPlainPort(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1")
	wantFailure(t, connTest(target(up, ca, "implicit"), 2*time.Second), "tls",
		"first record does not look like a TLS handshake", "use --tls starttls")
}

// STARTTLS against an implicit-TLS port: the server waits for a TLS
// ClientHello, so no greeting ever comes.
func TestConnectionTestSTARTTLSOnImplicitPort(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, true, "127.0.0.1")
	wantFailure(t, connTest(target(up, ca, "starttls"), 500*time.Millisecond), "greeting", "timeout", "use --tls implicit")
}

func TestConnectionTestCertificateForAnotherName(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "mail.other.test")
	wantFailure(t, connTest(target(up, ca, "starttls"), 2*time.Second), "tls", "certificate", "not for 127.0.0.1")
}

func TestConnectionTestUnknownAuthority(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1")
	tg := target(up, ca, "starttls")
	tg.RootCAs = testutil.NewCA(t).Pool
	wantFailure(t, connTest(tg, 2*time.Second), "tls", "unknown authority", "--ca-file")
}

func TestConnectionTestNoAnswer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never greeted
		}
	}()
	tg := &route.Upstream{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLSMode: "implicit"}
	start := time.Now()
	rep := connTest(tg, 300*time.Millisecond)
	wantFailure(t, rep, "tls", "timeout", "plain SMTP")
	if time.Since(start) > 2*time.Second {
		t.Fatalf("took %s; the timeout is 300ms", time.Since(start))
	}
	tg.TLSMode = "starttls"
	wantFailure(t, connTest(tg, 300*time.Millisecond), "greeting", "timeout", "no greeting")
}

func TestConnectionTestRefused(t *testing.T) {
	host, port, _ := net.SplitHostPort(testutil.FreePort(t))
	tg := &route.Upstream{Host: host, TLSMode: "starttls"}
	tg.Port, _ = strconv.Atoi(port)
	wantFailure(t, connTest(tg, time.Second), "connect", "refused", "nothing accepts connections")
}
