package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// withSendAPI turns on the send API on a loopback port (plain HTTP) and
// returns its base URL.
func (r *relay) withSendAPI() string {
	addr := testutil.FreePort(r.t)
	r.cfg.set("send_api", "listen", q(addr))
	return "http://" + addr
}

// startWithSendAPI starts the relay and waits until the send API's
// listener, which start does not wait for, accepts connections too.
func (r *relay) startWithSendAPI(base string) {
	r.t.Helper()
	r.start()
	addr := strings.TrimPrefix(base, "http://")
	waitUntil(r.t, 10*time.Second, "the send API listener", func() bool {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// apiKey makes a send API key for user with the CLI.
func (r *relay) apiKey(user string) string {
	r.t.Helper()
	res := r.cli("", "apikey", "create", user, "--name", "e2e", "--json")
	if res.Code != 0 {
		r.t.Fatalf("apikey create: %s", res)
	}
	var created struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &created); err != nil || created.Key == "" {
		r.t.Fatalf("apikey create --json: %v\n%s", err, res.Stdout)
	}
	return created.Key
}

func postMessage(t *testing.T, base, key string, body any, idemKey string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+"/v1/messages", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestSendAPIMessageArrivesWellFormed: a JSON request with text, HTML, an
// inline image and an attachment, sent with a key made by the CLI, reaches
// the upstream as a message Python's email package reads back: the MIME
// tree, UTF-8 text, the image referenced by its Content-ID, attachments
// byte-identical, no Bcc header. The key's user may not send as another
// address (403), and a revoked key is refused (401).
func TestSendAPIMessageArrivesWellFormed(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not on PATH; the end-to-end tests need it")
	}
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	base := r.withSendAPI()
	r.startWithSendAPI(base)
	r.addUser("app@example.com", "sendapi-pass-1")
	key := r.apiKey("app@example.com")

	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 1, 2, 255}, 500)...)
	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("\x00binary\xff\r\n"), 300)...)
	text := "Hej Zoë,\nyour receipt is attached.\n" + strings.Repeat("long line ", 150)
	html := `<p>Hej Zoë, <img src="cid:logo@app"></p>`
	status, out := postMessage(t, base, key, map[string]any{
		"from": "Zoë App <app@example.com>", "to": []string{"customer@example.net"}, "bcc": []string{"audit@example.net"},
		"subject": "Kvitto – order 42", "text": text, "html": html,
		"attachments": []map[string]string{
			{"filename": "logo.png", "content_type": "image/png", "content": base64.StdEncoding.EncodeToString(png), "content_id": "logo@app"},
			{"filename": "receipt.pdf", "content_type": "application/pdf", "content": base64.StdEncoding.EncodeToString(pdf)},
		},
	}, "")
	if status != 202 {
		t.Fatalf("POST /v1/messages: %d %v", status, out)
	}
	msgs := up.Wait(t, 1, 20*time.Second)
	if got := strings.Join(msgs[0].To, ","); got != "customer@example.net,audit@example.net" && got != "audit@example.net,customer@example.net" {
		t.Errorf("upstream envelope recipients %s", got)
	}

	cmd := exec.Command(python, filepath.Join("testdata", "sendapi_mime_check.py"))
	cmd.Stdin = bytes.NewReader(msgs[0].Data)
	pyOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("sendapi_mime_check.py: %v\n%s", err, pyOut)
	}
	var got struct {
		Subject, From string
		Bcc           *string
		Defects       []string
		Tree          mimeNode
	}
	if err := json.Unmarshal(pyOut, &got); err != nil {
		t.Fatalf("%v: %s", err, pyOut)
	}
	if got.Subject != "Kvitto – order 42" || got.From != "Zoë App <app@example.com>" || got.Bcc != nil || len(got.Defects) > 0 {
		t.Errorf("Python reads Subject %q, From %q, Bcc %v, defects %v", got.Subject, got.From, got.Bcc, got.Defects)
	}
	want := fmt.Sprintf("multipart/mixed[multipart/related[multipart/alternative[text/plain utf-8 text/html utf-8] image/png inline logo.png <logo@app> %s] application/pdf attachment receipt.pdf %s]",
		sha(png), sha(pdf))
	if s := got.Tree.String(); s != want {
		t.Errorf("MIME tree\n got %s\nwant %s", s, want)
	}
	alt := got.Tree.Parts[0].Parts[0].Parts
	if alt[0].Text != strings.ReplaceAll(text, "\n", "\r\n") && alt[0].Text != text {
		t.Errorf("text part reads %q", alt[0].Text)
	}
	if strings.TrimRight(alt[1].Text, "\r\n") != html {
		t.Errorf("html part reads %q", alt[1].Text)
	}

	// Another user's address: 403 in the relay's words; nothing sent.
	status, out = postMessage(t, base, key, map[string]any{"from": "ceo@other.example", "to": []string{"x@example.net"}, "subject": "s", "text": "t"}, "")
	if e, _ := out["error"].(map[string]any); status != 403 || !strings.Contains(fmt.Sprint(e["message"]), "not allowed for user <app@example.com>") {
		t.Errorf("foreign From: %d %v", status, out)
	}
	prefix := key[:12]
	if res := r.cli("", "apikey", "revoke", "app@example.com", prefix); res.Code != 0 {
		t.Fatalf("apikey revoke: %s", res)
	}
	if status, out := postMessage(t, base, key, map[string]any{"from": "app@example.com", "to": []string{"x@example.net"}, "subject": "s", "text": "t"}, ""); status != 401 {
		t.Errorf("revoked key: %d %v", status, out)
	}
}

type mimeNode struct {
	Type        string     `json:"type"`
	Parts       []mimeNode `json:"parts"`
	Charset     *string    `json:"charset"`
	Filename    *string    `json:"filename"`
	ContentID   *string    `json:"content_id"`
	Disposition *string    `json:"disposition"`
	SHA256      string     `json:"sha256"`
	Text        string     `json:"text"`
}

func (n mimeNode) String() string {
	if n.Parts != nil {
		var ps []string
		for _, p := range n.Parts {
			ps = append(ps, p.String())
		}
		return n.Type + "[" + strings.Join(ps, " ") + "]"
	}
	s := n.Type
	if n.Charset != nil && strings.HasPrefix(n.Type, "text/") {
		s += " " + *n.Charset
		return s
	}
	for _, v := range []*string{n.Disposition, n.Filename, n.ContentID} {
		if v != nil {
			s += " " + *v
		}
	}
	return s + " " + n.SHA256
}

// TestSendAPIKill9After202LosesNothing: messages answered 202 (some with
// an Idempotency-Key) while the upstream is down survive a SIGKILL; after
// the restart each is delivered exactly once, and a retry with a key used
// before the crash is answered from the stored answer and queues nothing.
func TestSendAPIKill9After202LosesNothing(t *testing.T) {
	upAddr := testutil.FreePort(t) // nothing listens here yet
	r := newRelay(t, upAddr)
	r.cfg.set("delivery", "connect_timeout", q("500ms"))
	base := r.withSendAPI()
	r.startWithSendAPI(base)
	r.addUser("app@example.com", "sendapi-pass-2")
	key := r.apiKey("app@example.com")

	const n = 10
	ids := map[string]string{}
	for i := 0; i < n; i++ {
		subject := fmt.Sprintf("crash-%d", i)
		status, out := postMessage(t, base, key, map[string]any{"from": "app@example.com", "to": []string{"rcpt@example.net"},
			"subject": subject, "text": "survives kill -9"}, fmt.Sprintf("idem-%d", i))
		if status != 202 {
			t.Fatalf("message %d: %d %v", i, status, out)
		}
		ids[subject] = out["id"].(string)
	}
	r.kill()

	up := testutil.StartUpstreamAt(t, upAddr, testutil.UpstreamOptions{})
	r.startWithSendAPI(base)
	// A retry of a request answered before the crash gets that answer.
	status, out := postMessage(t, base, key, map[string]any{"from": "app@example.com", "to": []string{"rcpt@example.net"},
		"subject": "crash-3", "text": "survives kill -9"}, "idem-3")
	if status != 202 || out["id"] != ids["crash-3"] {
		t.Fatalf("retry after restart: %d %v, want the first answer (id %s)", status, out, ids["crash-3"])
	}
	msgs := up.Wait(t, n, 30*time.Second)
	time.Sleep(time.Second) // a duplicate would arrive meanwhile
	got := bySubject(t, up.Messages())
	for subject := range ids {
		if len(got[subject]) != 1 {
			t.Errorf("%s delivered %d times, want once", subject, len(got[subject]))
		}
	}
	if len(up.Messages()) != n {
		t.Errorf("upstream received %d messages, want %d (first wait saw %d)", len(up.Messages()), n, len(msgs))
	}
}

// TestSendAPITemplateAndLimit: a template stored through the API is sent
// with data and arrives rendered, naming its version; past the user's
// hourly limit the API answers 429 with Retry-After and the relay's words.
func TestSendAPITemplateAndLimit(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.cfg.set("limits", "default_route_per_hour", "2")
	base := r.withSendAPI()
	r.startWithSendAPI(base)
	r.addUser("app@example.com", "sendapi-pass-3")
	key := r.apiKey("app@example.com")

	b, _ := json.Marshal(map[string]any{"subject": "Welcome, {{.name}}", "html": `<p>Hi {{.name}}</p>`, "variables": []string{"name"}})
	req, _ := http.NewRequest("PUT", base+"/v1/templates/welcome", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("PUT template: %s", resp.Status)
	}
	send := map[string]any{"from": "app@example.com", "to": []string{"a@example.net", "b@example.net"}, "template": "welcome", "data": map[string]any{"name": "<Zoë>"}}
	if status, out := postMessage(t, base, key, send, ""); status != 202 || out["template_version"] != 1.0 {
		t.Fatalf("template send: %d %v", status, out)
	}
	msgs := up.Wait(t, 1, 20*time.Second)
	p := parseReceived(t, msgs[0].Data)
	if p.Subject != "Welcome, <Zoë>" || p.Header.Get("X-Outbound-Template") != "welcome; version=1" {
		t.Errorf("upstream got Subject %q, X-Outbound-Template %q", p.Subject, p.Header.Get("X-Outbound-Template"))
	}
	if !bytes.Contains(msgs[0].Data, []byte("&lt;Zo")) || !bytes.Contains(msgs[0].Data, []byte("multipart/alternative")) {
		t.Errorf("the HTML is not escaped, or no text part was made:\n%s", msgs[0].Data)
	}

	// Two recipients used the hourly limit of 2.
	b, _ = json.Marshal(send)
	req, _ = http.NewRequest("POST", base+"/v1/messages", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(raw), "hourly limit of 2 reached for app@example.com") {
		t.Fatalf("over the limit: %s Retry-After %q %s", resp.Status, resp.Header.Get("Retry-After"), raw)
	}
}

// TestSendAPIOpenAPILint: the checked-in OpenAPI description passes
// Redocly's linter (installed by scripts/install-test-deps.sh).
func TestSendAPIOpenAPILint(t *testing.T) {
	redocly := filepath.Join(repoRoot, "bin", "test-tools", "redocly", "node_modules", ".bin", "redocly")
	if _, err := exec.LookPath(redocly); err != nil {
		t.Fatalf("%s is missing: run scripts/install-test-deps.sh (make deps) to install @redocly/cli", redocly)
	}
	out, err := exec.Command(redocly, "lint", "--format", "stylish", filepath.Join(repoRoot, "sendapi", "openapi.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("redocly lint: %v\n%s", err, out)
	}
}

// TestSendAPIDocumentedExamples: the curl, Node, Python and PHP examples of
// docs/send-api.md, run as written against the built binary (only the URL
// is the test's), each queue a message that reaches the upstream.
func TestSendAPIDocumentedExamples(t *testing.T) {
	tools := map[string]string{"curl": "", "node": "", "python3": "", "php": ""}
	for name := range tools {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s is not on PATH: run scripts/install-test-deps.sh (make deps)", name)
		}
		tools[name] = p
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "send-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	base := r.withSendAPI()
	r.startWithSendAPI(base)
	r.addUser("shop@example.com", "sendapi-pass-4", "example.com")
	key := r.apiKey("shop@example.com")
	tb, _ := json.Marshal(map[string]any{"subject": "Receipt for {{.name}}", "text": "Total {{.total}}", "variables": []string{"name", "total"}})
	req, _ := http.NewRequest("PUT", base+"/v1/templates/receipt", bytes.NewReader(tb))
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("PUT template: %v %v", resp, err)
	}

	dir := t.TempDir()
	testutil.WriteFile(t, dir, "invoice.pdf", []byte("%PDF-1.4 test invoice\n"))
	examples := []struct{ heading, fence, file, tool string }{
		{"### curl", "```sh", "example.sh", "sh"},
		{"### Node (fetch)", "```js", "example.mjs", "node"},
		{"### Python (requests)", "```python", "example.py", "python3"},
		{"### PHP", "```php", "example.php", "php"},
	}
	for _, ex := range examples {
		code := codeAfter(t, string(doc), ex.heading, ex.fence)
		code = strings.ReplaceAll(code, "https://relay.example.com:8026", base)
		path := testutil.WriteFile(t, dir, ex.file, []byte(code))
		bin := tools[ex.tool]
		if ex.tool == "sh" {
			bin = "/bin/sh"
		}
		cmd := exec.Command(bin, path)
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "OUTBOUND_KEY="+key)
		out, err := cmd.CombinedOutput()
		if err != nil || (ex.tool != "sh" && !strings.Contains(string(out), "queued as")) || (ex.tool == "sh" && !strings.Contains(string(out), `"id"`)) {
			t.Errorf("%s example: %v\n%s", ex.heading, err, out)
		}
	}
	msgs := up.Wait(t, len(examples), 20*time.Second)
	subjects := bySubject(t, msgs)
	for _, s := range []string{"Your receipt", "Receipt for Zoë", "Invoice 42", "Welcome"} {
		if len(subjects[s]) != 1 {
			t.Errorf("upstream got %d messages with Subject %q", len(subjects[s]), s)
		}
	}
}

// codeAfter is the body of the first code block opened by fence after
// heading in a Markdown document.
func codeAfter(t *testing.T, doc, heading, fence string) string {
	t.Helper()
	i := strings.Index(doc, heading+"\n")
	if i < 0 {
		t.Fatalf("docs/send-api.md has no %q", heading)
	}
	rest := doc[i:]
	j := strings.Index(rest, fence+"\n")
	if j < 0 {
		t.Fatalf("no %s block after %q", fence, heading)
	}
	rest = rest[j+len(fence)+1:]
	k := strings.Index(rest, "```")
	if k < 0 {
		t.Fatalf("unterminated block after %q", heading)
	}
	return rest[:k]
}
