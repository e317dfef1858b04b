package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestPostWithoutCSRFTokenRefused(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	for name, form := range map[string]url.Values{
		"missing": {},
		"wrong":   {"csrf": {"not-the-token"}},
	} {
		resp := b.post("/logout", form)
		if resp.status != http.StatusForbidden || !strings.Contains(resp.body, "CSRF token") {
			t.Errorf("%s token: %d, want 403 saying why\n%s", name, resp.status, resp.body)
		}
	}
	// The refused sign-out did not happen.
	if got := b.get("/"); got.status != http.StatusOK {
		t.Errorf("after refused sign-outs GET / is %d, want 200", got.status)
	}
	// Another session's token is no good either.
	other := r.browser(t)
	other.signIn(operatorName, operatorPassword)
	if resp := b.post("/logout", url.Values{"csrf": {other.csrf("/")}}); resp.status != http.StatusForbidden {
		t.Errorf("another session's token: %d, want 403", resp.status)
	}
	// htmx sends the token as a header.
	req, _ := http.NewRequest("POST", r.srv.URL+"/logout", nil)
	req.Header.Set("X-CSRF-Token", b.csrf("/"))
	if resp := b.do(req); resp.status != http.StatusSeeOther {
		t.Errorf("token in X-CSRF-Token: %d, want 303", resp.status)
	}
}

func TestSignInWithoutCSRFTokenRefused(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	form := url.Values{"login": {operatorName}, "password": {operatorPassword}}
	if resp := b.post("/login", form); resp.status != http.StatusForbidden {
		t.Errorf("sign-in without the form's token: %d, want 403", resp.status)
	}
	b.get("/login") // sets the cookie
	form.Set("csrf", "forged")
	if resp := b.post("/login", form); resp.status != http.StatusForbidden {
		t.Errorf("sign-in with a forged token: %d, want 403", resp.status)
	}
}

var (
	inlineScript = regexp.MustCompile(`(?i)<script(\s[^>]*)?>`)
	styleAttr    = regexp.MustCompile(`(?i)\sstyle\s*=`)
	eventAttr    = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleElement = regexp.MustCompile(`(?i)<style[\s>]`)
)

// checkPage fails the test when a page could not work under the CSP: an
// inline script, a style attribute or element, an event handler attribute.
func checkPage(t *testing.T, path string, resp response) {
	t.Helper()
	if got := resp.header.Get("Content-Security-Policy"); got != contentSecurityPolicy {
		t.Errorf("%s: Content-Security-Policy %q", path, got)
	}
	if got := resp.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", path, got)
	}
	if got := resp.header.Get("Referrer-Policy"); got != "same-origin" {
		t.Errorf("%s: Referrer-Policy %q", path, got)
	}
	if !strings.HasPrefix(resp.header.Get("Content-Type"), "text/html") {
		return
	}
	for _, tag := range inlineScript.FindAllString(resp.body, -1) {
		if !strings.Contains(tag, "src=") {
			t.Errorf("%s: inline script %s", path, tag)
		}
	}
	if styleAttr.MatchString(resp.body) || styleElement.MatchString(resp.body) {
		t.Errorf("%s: inline style", path)
	}
	if m := eventAttr.FindString(resp.body); m != "" {
		t.Errorf("%s: event handler attribute %s", path, m)
	}
}

func TestEveryAnswerCarriesTheCSPAndNoInlineScript(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	anon := r.browser(t)
	for _, p := range []string{"/login", "/static/style.css", "/static/app.js", "/no/such/page", "/"} {
		checkPage(t, p, anon.get(p))
	}
	msg := r.addMessage(t, "alice@example.com", "bob@example.net")
	op := r.browser(t)
	op.signIn(operatorName, operatorPassword)
	for _, p := range operatorPages {
		p = strings.ReplaceAll(p, "{msg}", msg.ID)
		resp := op.get(p)
		if resp.status != http.StatusOK {
			t.Errorf("operator GET %s: %d", p, resp.status)
		}
		checkPage(t, p, resp)
	}
	sender := r.browser(t)
	sender.signIn("alice@example.com", senderPassword)
	for _, p := range senderPages {
		p = strings.ReplaceAll(p, "{msg}", msg.ID)
		resp := sender.get(p)
		if resp.status != http.StatusOK {
			t.Errorf("sender GET %s: %d", p, resp.status)
		}
		checkPage(t, p, resp)
	}
}

// The pages each kind of actor can open in the rig, where sender
// alice@example.com has submitted message {msg}; the CSP test walks them
// all. Add a page here when you add one.
var (
	operatorPages = []string{"/",
		"/queue", "/queue?status=queued&user=alice%40example.com", "/queue/{msg}",
		"/queue/{msg}/retry", "/queue/{msg}/bounce", "/queue/{msg}/delete", "/suppressions"}
	senderPages = []string{"/",
		"/messages", "/messages?status=failed", "/queue/{msg}", "/queue/{msg}/delete"}
)

func TestSignedInPagesAreNotCached(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	if got := b.get("/").header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
}
