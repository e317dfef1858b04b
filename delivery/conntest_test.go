package smarthost

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

const (
	upUser = "apikey"
	upPass = "upstream-password-abc123"
)

// target points at up with the test CA trusted.
func target(up *testutil.Upstream, ca *testutil.CA, mode string) Target {
	return Target{Host: up.Host, Port: up.Port, TLS: mode, Username: upUser, Password: upPass,
		RootCAs: ca.Pool, LocalName: "relay.test", Timeout: 2 * time.Second}
}

func wantFailure(t *testing.T, rep Report, step, errPart, hintPart string) {
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
	rep := Test(context.Background(), target(up, ca, "starttls"))
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
	if rep := Test(context.Background(), target(up, ca, "implicit")); !rep.OK {
		t.Fatalf("want ok:\n%s", rep.String())
	}
}

func TestConnectionTestBadPassword(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1")
	tg := target(up, ca, "starttls")
	tg.Password = "wrong-password-000000"
	wantFailure(t, Test(context.Background(), tg), "auth", "535", "username or password")
}

func TestConnectionTestNoTLSOffered(t *testing.T) {
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{Username: upUser, Password: upPass})
	wantFailure(t, Test(context.Background(), target(up, ca, "starttls")), "tls", "does not offer STARTTLS", "STARTTLS")
}

// Implicit TLS against a plain (STARTTLS) port: the server's greeting is
// not a TLS record.
func TestConnectionTestImplicitOnPlainPort(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1")
	wantFailure(t, Test(context.Background(), target(up, ca, "implicit")), "tls",
		"first record does not look like a TLS handshake", "use --tls starttls")
}

// STARTTLS against an implicit-TLS port: the server waits for a TLS
// ClientHello, so no greeting ever comes.
func TestConnectionTestSTARTTLSOnImplicitPort(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, true, "127.0.0.1")
	tg := target(up, ca, "starttls")
	tg.Timeout = 500 * time.Millisecond
	wantFailure(t, Test(context.Background(), tg), "greeting", "timeout", "use --tls implicit")
}

func TestConnectionTestCertificateForAnotherName(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "mail.other.test")
	wantFailure(t, Test(context.Background(), target(up, ca, "starttls")), "tls", "certificate", "not for 127.0.0.1")
}

func TestConnectionTestUnknownAuthority(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1")
	tg := target(up, ca, "starttls")
	tg.RootCAs = testutil.NewCA(t).Pool
	wantFailure(t, Test(context.Background(), tg), "tls", "unknown authority", "--ca-file")
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
	tg := Target{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLS: "implicit", Timeout: 300 * time.Millisecond}
	start := time.Now()
	rep := Test(context.Background(), tg)
	wantFailure(t, rep, "tls", "timeout", "plain SMTP")
	if time.Since(start) > 2*time.Second {
		t.Fatalf("took %s; the timeout is 300ms", time.Since(start))
	}
	tg.TLS = "starttls"
	wantFailure(t, Test(context.Background(), tg), "greeting", "timeout", "no greeting")
}

func TestConnectionTestRefused(t *testing.T) {
	host, port, _ := net.SplitHostPort(testutil.FreePort(t))
	tg := Target{Host: host, TLS: "starttls", Timeout: time.Second}
	tg.Port, _ = strconv.Atoi(port)
	wantFailure(t, Test(context.Background(), tg), "connect", "refused", "nothing accepts connections")
}
