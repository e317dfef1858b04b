package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// captureRelay is a relay whose config sets only its data directory,
// certificate and listen addresses: the default route, its limits and
// everything else stay at the embedded defaults, which capture.
func captureRelay(t *testing.T) *relay {
	t.Helper()
	r := newRelay(t, "127.0.0.1:1")
	delete(r.cfg, "default_route")
	delete(r.cfg, "limits")
	return r
}

// captureList is GET /api/capture?to=&subject= on r's admin listener.
func (r *relay) captureList(t *testing.T, to, subject string) []map[string]any {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(r.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"to": {to}, "subject": {subject}}
	req, _ := http.NewRequest("GET", "http://"+r.AdminAddr+"/api/capture?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /api/capture: %d, %v", resp.StatusCode, err)
	}
	return list
}

// smtplibScript sends the message in $MSG (bytes) from $FROM to the
// comma-separated $TO over SMTP_SSL with the test CA, and prints the
// outcome as JSON: {"ok": true} or the SMTP refusal's code and text.
const smtplibScript = `
import json, os, smtplib, ssl
ctx = ssl.create_default_context(cafile=os.environ["CAFILE"])
out = {}
try:
    with smtplib.SMTP_SSL("localhost", int(os.environ["PORT"]), context=ctx, timeout=30) as s:
        s.login(os.environ["USER"], os.environ["PASSWORD"])
        refused = s.sendmail(os.environ["FROM"], os.environ["TO"].split(","), os.environb[b"MSG"])
        out = {"ok": True, "refused": {k: v[0] for k, v in refused.items()}}
except smtplib.SMTPRecipientsRefused as e:
    out = {"ok": False, "code": list(e.recipients.values())[0][0], "message": list(e.recipients.values())[0][1].decode()}
except smtplib.SMTPResponseException as e:
    out = {"ok": False, "code": e.smtp_code, "message": e.smtp_error.decode()}
print(json.dumps(out))
`

type smtplibOutcome struct {
	OK      bool           `json:"ok"`
	Refused map[string]int `json:"refused"`
	Code    int            `json:"code"`
	Message string         `json:"message"`
}

func (r *relay) smtplib(t *testing.T, user, password, from, to string, msg []byte) smtplibOutcome {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not on PATH; the end-to-end tests need it")
	}
	_, port, _ := net.SplitHostPort(r.ImplicitAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", smtplibScript)
	cmd.Env = append(os.Environ(), "CAFILE="+r.CAFile, "PORT="+port, "USER="+user, "PASSWORD="+password,
		"FROM="+from, "TO="+to, "MSG="+string(msg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s\n%s", err, out, stderr.String())
	}
	var o smtplibOutcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("smtplib printed no JSON: %v\n%s\n%s", err, out, stderr.String())
	}
	return o
}

// TestCaptureOnTheEmbeddedDefaults: with the default route left at its
// embedded default, the relay says loudly at start that mail is captured;
// a message sent with Python's smtplib goes through the whole pipeline
// and appears in `outbound capture list` and GET /api/capture, byte for
// byte what the client sent plus only the relay's own Received header; a
// third recipient past the default route's 2 per hour and a foreign From
// are refused as with a real route.
func TestCaptureOnTheEmbeddedDefaults(t *testing.T) {
	r := captureRelay(t)
	r.start()
	if log := r.log(); !strings.Contains(log, "CAPTURE MODE: mail is captured, not sent") || !strings.Contains(log, `mode = \"smtp\"`) {
		t.Fatalf("no loud capture line at start:\n%s", log)
	}
	r.addUser("app@example.com", "capture-pass-1234")

	msg := []byte("From: App <app@example.com>\r\nTo: customer@example.net, other@example.org\r\n" +
		"Subject: Your receipt 42\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <receipt-42@example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThanks for your order.\r\n..a dotted line\r\n")
	if o := r.smtplib(t, "app@example.com", "capture-pass-1234", "app@example.com", "customer@example.net,other@example.org", msg); !o.OK || len(o.Refused) != 0 {
		t.Fatalf("send: %+v", o)
	}

	var id string
	waitUntil(t, 20*time.Second, "the message in GET /api/capture", func() bool {
		list := r.captureList(t, "customer@example.net", "receipt 42")
		if len(list) == 1 {
			id, _ = list[0]["id"].(string)
		}
		return id != ""
	})
	if list := r.captureList(t, "nobody@example.net", ""); len(list) != 0 {
		t.Fatalf("to= filter: %v", list)
	}
	if res := r.cli("", "capture", "list"); res.Code != 0 || !strings.Contains(res.Stdout, id) || !strings.Contains(res.Stdout, "Your receipt 42") {
		t.Fatalf("capture list: %s", res)
	}
	raw := r.cli("", "capture", "show", id, "--raw")
	if raw.Code != 0 {
		t.Fatalf("capture show --raw: %s", raw)
	}
	prefix, ok := strings.CutSuffix(raw.Stdout, string(msg))
	if !ok {
		t.Fatalf("captured bytes do not end with what the client sent:\n%q", raw.Stdout)
	}
	// The relay's own header fields only: Received, with its folded lines.
	for _, line := range strings.Split(strings.TrimSuffix(prefix, "\r\n"), "\r\n") {
		if !strings.HasPrefix(line, "Received:") && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			t.Fatalf("captured message has more than the relay's Received header before the client's bytes: %q", prefix)
		}
	}
	if !strings.HasPrefix(prefix, "Received:") {
		t.Fatalf("no Received header: %q", prefix)
	}
	if show := r.cli("", "capture", "show", id); show.Code != 0 || !strings.Contains(show.Stdout, "Thanks for your order.") {
		t.Fatalf("capture show: %s", show)
	}
	if q := r.cli("", "queue", "show", id); q.Code != 0 || !strings.Contains(q.Stdout, "delivered") {
		t.Fatalf("queue show: the capture route records the recipients delivered: %s", q)
	}

	// The embedded default route allows 2 recipients per hour: both are used.
	o := r.smtplib(t, "app@example.com", "capture-pass-1234", "app@example.com", "third@example.net", message("app@example.com", "third@example.net", "over", "x"))
	if o.OK || o.Code != 450 || !strings.Contains(o.Message, "4.7.1") {
		t.Fatalf("a recipient past the limit: %+v, want 450 4.7.1", o)
	}
	o = r.smtplib(t, "app@example.com", "capture-pass-1234", "ceo@other.example", "x@example.net", message("ceo@other.example", "x@example.net", "forged", "x"))
	if o.OK || o.Code != 550 || !strings.Contains(o.Message, "not allowed for user") {
		t.Fatalf("a foreign From: %+v, want 550 not allowed for user", o)
	}
	if list := r.captureList(t, "", ""); len(list) != 1 {
		t.Fatalf("refused messages were captured: %v", list)
	}
}

// TestCaptureRefusedOnAPublicListener: capture with a submission listener
// on a public address and no allow_capture_in_production does not start,
// and says which keys to change.
func TestCaptureRefusedOnAPublicListener(t *testing.T) {
	r := captureRelay(t)
	r.cfg.set("submission", "implicit_tls", q("0.0.0.0:"+strings.Split(testutil.FreePort(t), ":")[1]))
	if err := os.WriteFile(r.ConfigPath, []byte(r.cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runBinary(t, "", "serve", "-config", r.ConfigPath)
	if res.Code == 0 {
		t.Fatalf("serve started: %s", res)
	}
	for _, want := range []string{"default_route.mode", "submission.implicit_tls", "allow_capture_in_production"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("the refusal does not name %s: %s", want, res)
		}
	}
}
