package web

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"
)

// The smarthost forms have Kind (SMTP or Capture), labelled like every
// field, with the SMTP fields in the part the style sheet hides for
// Capture; a user's own SMTP server form has no Kind.
func TestSmarthostFormsHaveKind(t *testing.T) {
	r := newRig(t)
	r.addSmarthost(t, "sg")
	b := r.signedIn(t, operatorName)
	for _, path := range []string{"/smarthosts", "/smarthosts/sg"} {
		page := b.get(path)
		wantIn(t, path, page, `<label for="kind">Kind</label>`, `<select id="kind" name="kind"`,
			`<option value="smtp"`, `>SMTP</option>`, `<option value="capture">Capture</option>`, `<div class="stack smtp-only">`)
		everyControlLabelled(t, path, page)
	}
	wantIn(t, "sg's page", b.get("/smarthosts/sg"), `<option value="smtp" selected>SMTP</option>`)
	r.addSender(t, "app@example.com")
	wantNotIn(t, "a user's page", b.get("/users/app@example.com"), `id="kind"`)
}

// everyControlLabelled fails the test for each input, select or textarea
// of page with an id but no <label for> naming it.
func everyControlLabelled(t *testing.T, what string, page response) {
	t.Helper()
	labels := map[string]bool{}
	for _, m := range regexp.MustCompile(`<label[^>]* for="([^"]+)"`).FindAllStringSubmatch(page.body, -1) {
		labels[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`<(?:input|select|textarea)[^>]* id="([^"]+)"`).FindAllStringSubmatch(page.body, -1) {
		if !labels[m[1]] {
			t.Errorf("%s: control #%s has no <label for>", what, m[1])
		}
	}
}

// Added with Kind Capture, a smarthost is saved as capture even though the
// hidden SMTP fields came with the form: they are left out of the request.
// Its page says it captures, Test connection says so without dialling, and
// an SMTP smarthost saved as Capture becomes one.
func TestSmarthostAddAndSaveAsCapture(t *testing.T) {
	r := newRig(t)
	up := startUpstream(t)
	b := r.signedIn(t, operatorName)
	form := smarthostForm("staging", up, upPassword)
	form.Set("kind", "capture")
	wantIn(t, "test of a capture form", b.submit("/smarthosts", "/smarthosts/new/test", form),
		"Connection test passed", "nothing to connect to")
	if up.Connections() != 0 {
		t.Fatalf("the test of a capture form dialled the upstream %d times", up.Connections())
	}
	res := b.submit("/smarthosts", "/smarthosts/new", form)
	if res.status != http.StatusSeeOther || res.location != "/smarthosts/staging" {
		t.Fatalf("add: %d %s\n%s", res.status, res.location, res.body)
	}
	h, err := r.hosts.Get("staging")
	if err != nil || !h.Captures() || h.Host != "" || len(h.SealedPassword) != 0 {
		t.Fatalf("stored: %+v %v", h, err)
	}
	page := b.get("/smarthosts/staging")
	wantIn(t, "staging's page", page, "Smarthost staging added: its users&#39; mail is kept in the capture store, never sent.",
		"Capture: its users' mail is kept in the capture store", `<option value="capture" selected>Capture</option>`)
	wantNotIn(t, "staging's page", page, "<dt>Server</dt>")
	wantIn(t, "the list", b.get("/smarthosts"), "capture: kept, never sent")

	// An SMTP smarthost saved as Capture, its SMTP fields posted as they were.
	if res := b.submit("/smarthosts", "/smarthosts/new", smarthostForm("sg", up, upPassword)); res.status != http.StatusSeeOther {
		t.Fatalf("add sg: %d\n%s", res.status, res.body)
	}
	edit := smarthostForm("sg", up, "")
	edit.Del("name")
	edit.Set("kind", "capture")
	if res := b.submit("/smarthosts/sg", "/smarthosts/sg", edit); res.status != http.StatusSeeOther {
		t.Fatalf("save as capture: %d\n%s", res.status, res.body)
	}
	if h, err := r.hosts.Get("sg"); err != nil || !h.Captures() || len(h.SealedPassword) != 0 {
		t.Fatalf("sg after the save: %+v %v", h, err)
	}
	// Capture smarthosts are offered as no one's fallback.
	wantNotIn(t, "the add form", b.get("/smarthosts"), `<option value="staging">staging</option>`)
}

// Saved back as SMTP, a capture smarthost needs its settings: the API's
// refusal comes back on its page, and the kind stays capture.
func TestCaptureSmarthostBackToSMTPNeedsSettings(t *testing.T) {
	r := newRig(t)
	b := r.signedIn(t, operatorName)
	form := url.Values{"name": {"staging"}, "kind": {"capture"}}
	if res := b.submit("/smarthosts", "/smarthosts/new", form); res.status != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", res.status, res.body)
	}
	res := b.submit("/smarthosts/staging", "/smarthosts/staging", url.Values{"kind": {"smtp"}})
	if res.status != http.StatusBadRequest {
		t.Fatalf("back to smtp without settings: %d\n%s", res.status, res.body)
	}
	wantIn(t, "the refusal", res, `role="alert"`, "not a host name", `<option value="smtp" selected>SMTP</option>`)
	if h, _ := r.hosts.Get("staging"); !h.Captures() {
		t.Fatal("the kind changed")
	}
}
