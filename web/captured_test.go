package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"outbound/capture"
)

const capturedHTML = "From: app@example.com\r\nTo: c@example.net\r\nSubject: Welcome aboard\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain\r\n\r\nplain welcome\r\n" +
	"--b\r\nContent-Type: text/html\r\n\r\n<p onclick=\"x()\">Hi &amp; <b>welcome</b></p><script>alert(1)</script>\r\n--b--\r\n"

// An operator finds a captured message on the Captured page and opens it:
// the HTML part in an iframe sandboxed without any permission, from
// srcdoc (escaped, so nothing of it runs in the page), the text part and
// the headers, under the web interface's unchanged CSP. Senders may not.
func TestCapturedPageShowsTheMessageSandboxed(t *testing.T) {
	r := newRig(t)
	if err := r.captured.Put(&capture.Message{ID: "CAP1", User: "app@example.com", From: "app@example.com",
		To: []string{"c@example.net"}, Captured: time.Now(), Body: []byte(capturedHTML)}); err != nil {
		t.Fatal(err)
	}
	op := r.signedIn(t, operatorName)
	list := op.get("/captured?subject=welcome")
	if list.status != http.StatusOK || !strings.Contains(list.body, `href="/captured/CAP1"`) || !strings.Contains(list.body, "Welcome aboard") {
		t.Fatalf("Captured page: %d\n%s", list.status, list.body)
	}
	if none := op.get("/captured?to=nobody"); !strings.Contains(none.body, "No captured messages match") {
		t.Fatalf("filtered Captured page:\n%s", none.body)
	}
	show := op.get("/captured/CAP1")
	if show.status != http.StatusOK {
		t.Fatalf("message page: %d\n%s", show.status, show.body)
	}
	for _, want := range []string{`<iframe class="captured-html" sandbox title=`, `srcdoc="&lt;p onclick=&#34;x()&#34;&gt;Hi &amp;amp; &lt;b&gt;welcome`,
		"plain welcome", "Welcome aboard", "Content-Type"} {
		if !strings.Contains(show.body, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	if strings.Contains(show.body, "<script>alert") || strings.Contains(show.body, "allow-scripts") {
		t.Errorf("the message's HTML reaches the page unescaped or with scripts allowed:\n%s", show.body)
	}
	if got := show.header.Get("Content-Security-Policy"); got != contentSecurityPolicy {
		t.Errorf("CSP %q", got)
	}
	if missing := op.get("/captured/NOPE"); missing.status != http.StatusNotFound {
		t.Errorf("unknown capture: %d", missing.status)
	}
	r.addSender(t, "app@example.com")
	if s := r.signedIn(t, "app@example.com"); s.get("/captured").status != http.StatusForbidden {
		t.Error("a sender reached the Captured page")
	}
}
