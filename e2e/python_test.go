package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// TestPythonSmtplibBothListeners: a Python application using only the
// standard library (smtplib over SMTP_SSL and over starttls(), verifying
// the certificate and the host name "localhost" against the test CA)
// submits to both listeners; both messages reach the upstream intact,
// through STARTTLS with the route's ca_file and upstream AUTH. A wrong
// password gets 535, AUTH is not offered before STARTTLS, and a foreign
// sender (envelope or header) is refused with "not allowed for user".
func TestPythonSmtplibBothListeners(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not on PATH; the end-to-end tests need it")
	}

	r := newRelay(t, "127.0.0.1:1")
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS: r.upstreamTLS(), Username: "relay-account", Password: "upstream-secret",
	})
	r.useUpstream(up.Addr(), "starttls")
	r.cfg.set("default_route", "username", q("relay-account"))
	r.cfg.set("default_route", "password_file", q(testutil.WriteFile(t, t.TempDir(), "upstream.pass", []byte("upstream-secret\n"))))
	r.start()
	r.addUser("app@example.com", "python-pass-1234")

	const token = "py-3f9a"
	body := "Hej från Python smtplib!\nSecond line, with trailing dots...\n.\nend"
	_, implicitPort, _ := net.SplitHostPort(r.ImplicitAddr)
	_, starttlsPort, _ := net.SplitHostPort(r.StartTLSAddr)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "smtplib_client.py"))
	cmd.Env = append(os.Environ(),
		"OUTBOUND_HOST=localhost",
		"OUTBOUND_IMPLICIT_PORT="+implicitPort,
		"OUTBOUND_STARTTLS_PORT="+starttlsPort,
		"OUTBOUND_CAFILE="+r.CAFile,
		"OUTBOUND_USER=app@example.com",
		"OUTBOUND_PASSWORD=python-pass-1234",
		"OUTBOUND_FROM=app@example.com",
		"OUTBOUND_FOREIGN_FROM=ceo@other.example",
		"OUTBOUND_TO=customer@example.net",
		"OUTBOUND_TOKEN="+token,
		"OUTBOUND_BODY="+body,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("smtplib_client.py: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	type outcome struct {
		OK        bool   `json:"ok"`
		Exception string `json:"exception"`
		Code      int    `json:"code"`
		Message   string `json:"message"`
	}
	var got map[string]outcome
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("smtplib_client.py printed no JSON: %v\n%s\nstderr: %s", err, out, stderr.String())
	}
	t.Logf("smtplib_client.py: %s", out)

	for _, step := range []string{"send_implicit", "send_starttls"} {
		if o := got[step]; !o.OK {
			t.Errorf("%s: %s %d %s, want success", step, o.Exception, o.Code, o.Message)
		}
	}
	if o := got["login_before_starttls"]; o.OK || o.Exception != "SMTPNotSupportedError" {
		t.Errorf("login_before_starttls: %+v, want SMTPNotSupportedError (no AUTH offered before STARTTLS)", o)
	}
	if o := got["wrong_password"]; o.Exception != "SMTPAuthenticationError" || o.Code != 535 {
		t.Errorf("wrong_password: %+v, want SMTPAuthenticationError 535", o)
	}
	for step, exc := range map[string]string{
		"foreign_envelope_from": "SMTPSenderRefused",
		"foreign_header_from":   "SMTPDataError",
	} {
		o := got[step]
		if o.Exception != exc || o.Code/100 != 5 || !strings.Contains(o.Message, "not allowed for user") {
			t.Errorf("%s: %+v, want %s 5xx saying \"not allowed for user\"", step, o, exc)
		}
	}
	if o := got["without_ca"]; o.OK || o.Exception != "SSLCertVerificationError" {
		t.Errorf("without_ca: %+v, want SSLCertVerificationError (is the client really verifying?)", o)
	}

	msgs := up.Wait(t, 2, 20*time.Second)
	subjects := bySubject(t, msgs)
	for _, s := range []string{token + " implicit", token + " starttls"} {
		ps := subjects[s]
		if len(ps) != 1 {
			t.Errorf("upstream got %d messages with Subject %q, want 1 (subjects: %v)", len(ps), s, keys(subjects))
			continue
		}
		if got := decodeBody(t, ps[0]); strings.TrimRight(got, "\n") != body {
			t.Errorf("%q: body arrived as %q, want %q", s, got, body)
		}
	}
	for _, m := range msgs {
		if m.User != "relay-account" {
			t.Errorf("upstream AUTH user %q, want relay-account (from password_file)", m.User)
		}
		if m.From != "app@example.com" || len(m.To) != 1 || m.To[0] != "customer@example.net" {
			t.Errorf("envelope %s -> %v, want app@example.com -> [customer@example.net]", m.From, m.To)
		}
	}
	for s := range subjects {
		if strings.Contains(s, "foreign") {
			t.Errorf("a refused message reached the upstream: %q", s)
		}
	}
}

// decodeBody undoes the Content-Transfer-Encoding Python chose and turns
// CRLF back into LF.
func decodeBody(t *testing.T, p parsed) string {
	t.Helper()
	var rd io.Reader = bytes.NewReader(p.Body)
	switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
	case "base64":
		rd = base64.NewDecoder(base64.StdEncoding, rd)
	case "quoted-printable":
		rd = quotedprintable.NewReader(rd)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("decoding body: %v", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
