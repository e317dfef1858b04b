package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// TestSwaksBothListeners: swaks submits over implicit TLS (--tls-on-connect)
// and STARTTLS (--tls), each with AUTH PLAIN and AUTH LOGIN, verifying the
// relay's certificate against the test CA; every message reaches an
// implicit-TLS upstream that the route trusts through ca_file.
//
// swaks 20201014 (Debian 12) checks only the certificate chain with
// --tls-verify, not the host name; --tls-sni localhost is sent so that the
// same command works against a relay choosing its certificate by SNI.
// A run without the CA must fail, which proves that verification is on.
func TestSwaksBothListeners(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("swaks is not on PATH (make deps installs it)")
		}
		t.Fatal("swaks is not on PATH but CI is set: scripts/install-test-deps.sh should have installed it")
	}

	r := newRelay(t, "127.0.0.1:1")
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{TLS: r.upstreamTLS(), Implicit: true})
	r.useUpstream(up.Addr(), "implicit")
	r.start()
	r.addUser("swaks@example.com", "swaks-pass-5678", "example.org")

	run := func(extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append([]string{
			"--server", "127.0.0.1", "--tls-sni", "localhost",
			"--auth-user", "swaks@example.com", "--auth-password", "swaks-pass-5678",
			"--to", "rcpt@example.net", "--timeout", "30",
		}, extra...)
		out, err := exec.CommandContext(ctx, swaks, args...).CombinedOutput()
		return string(out), err
	}

	cases := []struct {
		name, port, tlsFlag, mech, from string
	}{
		{"implicit PLAIN", r.ImplicitAddr, "--tls-on-connect", "PLAIN", "swaks@example.com"},
		{"implicit LOGIN", r.ImplicitAddr, "--tls-on-connect", "LOGIN", "news@example.org"},
		{"starttls PLAIN", r.StartTLSAddr, "--tls", "PLAIN", "news@example.org"},
		{"starttls LOGIN", r.StartTLSAddr, "--tls", "LOGIN", "swaks@example.com"},
	}
	for _, c := range cases {
		subject := "swaks " + c.name
		out, err := run("--port", portOf(c.port), c.tlsFlag, "--tls-verify", "--tls-ca-path", r.CAFile,
			"--auth", c.mech, "--from", c.from, "--header", "From: "+c.from,
			"--header", "Subject: "+subject, "--body", "sent by swaks: "+c.name)
		if err != nil || !strings.Contains(out, "250 2.0.0 Ok: queued as") {
			t.Errorf("%s: swaks failed (%v):\n%s", c.name, err, out)
		}
	}

	// Without the test CA the same submission must fail at the TLS handshake.
	out, err := run("--port", portOf(r.ImplicitAddr), "--tls-on-connect", "--tls-verify",
		"--auth", "PLAIN", "--from", "swaks@example.com", "--header", "Subject: swaks unverified")
	if err == nil || strings.Contains(out, "queued as") {
		t.Errorf("swaks --tls-verify without the test CA succeeded; is verification really on?\n%s", out)
	}

	msgs := up.Wait(t, len(cases), 20*time.Second)
	subjects := bySubject(t, msgs)
	for _, c := range cases {
		ps := subjects["swaks "+c.name]
		if len(ps) != 1 {
			t.Errorf("upstream got %d messages with Subject %q, want 1 (got %v)", len(ps), "swaks "+c.name, keys(subjects))
			continue
		}
		if body := strings.TrimSpace(string(ps[0].Body)); body != "sent by swaks: "+c.name {
			t.Errorf("%s: body arrived as %q", c.name, body)
		}
	}
	if _, ok := subjects["swaks unverified"]; ok {
		t.Error("the unverified submission reached the upstream")
	}
}

func portOf(addr string) string {
	_, port, _ := strings.Cut(addr, ":")
	return port
}
