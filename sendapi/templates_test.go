package sendapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"outbound/quota"
)

func (h *harness) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		json.Unmarshal(raw, &out)
	}
	return resp.StatusCode, out
}

var welcome = map[string]any{
	"subject":   "Welcome, {{.name}}",
	"text":      "Hi {{.name}}, confirm at {{.link}}",
	"html":      `<p>Hi {{.name}}, <a href="{{.link}}">confirm</a></p>`,
	"variables": []string{"name", "link"},
}

func TestTemplateVersionsAndRender(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	if code, out := h.call(t, "PUT", "/v1/templates/welcome", welcome); code != 201 || out["version"] != 1.0 {
		t.Fatalf("create: %d %v", code, out)
	}
	v2 := map[string]any{"subject": "Welcome aboard, {{.name}}", "text": "Hello {{.name}}", "variables": []string{"name"}}
	if code, out := h.call(t, "PUT", "/v1/templates/welcome", v2); code != 201 || out["version"] != 2.0 {
		t.Fatalf("update: %d %v", code, out)
	}
	code, out := h.call(t, "POST", "/v1/templates/welcome/render", map[string]any{"data": map[string]any{"name": "Zoë"}})
	if code != 200 || out["subject"] != "Welcome aboard, Zoë" || out["version"] != 2.0 {
		t.Fatalf("render latest: %d %v", code, out)
	}
	code, out = h.call(t, "POST", "/v1/templates/welcome/render", map[string]any{"version": 1,
		"data": map[string]any{"name": "<script>x</script>", "link": "javascript:alert(1)"}})
	if code != 200 {
		t.Fatalf("render v1: %d %v", code, out)
	}
	// html/template escapes by context: text, and a URL attribute.
	html := out["html"].(string)
	if strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;") || strings.Contains(html, `href="javascript:`) {
		t.Errorf("HTML not escaped by context: %s", html)
	}
	if out["text"] != "Hi <script>x</script>, confirm at javascript:alert(1)" {
		t.Errorf("text part %q", out["text"])
	}
	if len(h.queued(t)) != 0 {
		t.Fatal("render queued a message")
	}
	code, list := h.call(t, "GET", "/v1/templates/welcome?version=1", nil)
	if code != 200 || list["version"] != 1.0 {
		t.Fatalf("get v1: %d %v", code, list)
	}
}

func TestTemplateSendRecordsVersionAndNamesMissingVariable(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	h.call(t, "PUT", "/v1/templates/welcome", welcome)
	msg := map[string]any{"from": alice, "to": []string{"bob@example.net"}, "template": "welcome", "data": map[string]any{"name": "Bob"}}
	resp, out := h.post(t, h.key, msg)
	code, field, text := errorOf(t, out)
	if resp.StatusCode != 422 || code != "template_error" || field != "data.link" || !strings.Contains(text, `"link"`) {
		t.Fatalf("missing variable: %d %v", resp.StatusCode, out)
	}
	msg["data"] = map[string]any{"name": "Bob", "link": "https://example.com/c?t=1&u=2"}
	resp, out = h.post(t, h.key, msg)
	if resp.StatusCode != 202 || out["template"] != "welcome" || out["template_version"] != 1.0 {
		t.Fatalf("send: %d %v", resp.StatusCode, out)
	}
	body, _ := h.q.Body(out["id"].(string))
	for _, want := range []string{"X-Outbound-Template: welcome; version=1", "Subject: Welcome, Bob", "multipart/alternative", "https://example.com/c?t=1&amp;u=2"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("queued message lacks %q:\n%s", want, body)
		}
	}
	// A key the template reads but does not declare is named too.
	h.call(t, "PUT", "/v1/templates/loose", map[string]any{"subject": "x", "text": "{{.order}}"})
	resp, out = h.post(t, h.key, map[string]any{"from": alice, "to": []string{"bob@example.net"}, "template": "loose", "data": map[string]any{}})
	if _, field, _ := errorOf(t, out); resp.StatusCode != 422 || field != "data.order" {
		t.Fatalf("undeclared missing key: %d %v", resp.StatusCode, out)
	}
	// No such template: 404.
	resp, out = h.post(t, h.key, map[string]any{"from": alice, "to": []string{"bob@example.net"}, "template": "nope"})
	if resp.StatusCode != 404 {
		t.Fatalf("unknown template: %d %v", resp.StatusCode, out)
	}
}

func TestTemplateTextMadeFromHTML(t *testing.T) {
	tm := Template{Name: "r", Subject: "s", HTML: `<style>p{}</style><h1>Receipt</h1><p>Total: <b>{{.total}}</b></p><p><a href="https://x.example/r">View</a></p>`}
	out, fe := tm.render(map[string]any{"total": "€5"})
	if fe != nil {
		t.Fatal(fe)
	}
	if out.Text != "Receipt\n\nTotal: €5\n\nView (https://x.example/r)\n" {
		t.Errorf("text %q", out.Text)
	}
}

func TestTemplateLimitsAndValidation(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	big := map[string]any{"subject": "s", "text": strings.Repeat("x", MaxTemplateBytes+1)}
	if code, out := h.call(t, "PUT", "/v1/templates/big", big); code != 413 {
		t.Errorf("oversize template: %d %v", code, out)
	}
	if code, out := h.call(t, "PUT", "/v1/templates/bad", map[string]any{"subject": "s", "text": "{{.x"}); code != 422 || out["error"].(map[string]any)["field"] != "text" {
		t.Errorf("unparsable template: %d %v", code, out)
	}
	if code, _ := h.call(t, "PUT", "/v1/templates/bad%20name", map[string]any{"subject": "s", "text": "x"}); code != 422 {
		t.Errorf("bad name: %d", code)
	}
	// Output is bounded: a template that writes too much fails.
	tm := Template{Name: "loop", Subject: "s", Text: `{{range .items}}{{range $.items}}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{{end}}{{end}}`}
	items := make([]any, 1000)
	if _, fe := tm.render(map[string]any{"items": items}); fe == nil || !strings.Contains(fe.msg, "larger than") {
		t.Errorf("runaway output: %v", fe)
	}
	if code, _ := h.call(t, "DELETE", "/v1/templates/nope", nil); code != 404 {
		t.Errorf("delete unknown: %d", code)
	}
}
