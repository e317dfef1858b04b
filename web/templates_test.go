package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// templateForm is the template editor's fields as a browser posts them.
func templateForm(name, subject, text, html, variables, sample string) url.Values {
	return url.Values{"tmpl": {name}, "subject": {subject}, "text": {text}, "html": {html},
		"variables": {variables}, "sample": {sample}}
}

// Save stores a new version each time; the list and the editor show the
// latest, for the sender itself and for an operator.
func TestTemplateSaveMakesVersions(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	b := rig.signedIn(t, "app@example.com")
	base := "/users/app@example.com/templates"

	wantIn(t, "the E-mail settings page", b.get("/users/app@example.com"), `href="/users/app@example.com/templates"`)
	wantIn(t, "the Templates page", b.get(base), "<h1>Templates</h1>", "No templates yet.", "New template")
	editor := b.get(base + "/new")
	wantIn(t, "the new template editor", editor, `<label for="tmpl">Name</label>`, `<label for="subject">Subject</label>`,
		`<label for="text">Text</label>`, `<label for="html">HTML</label>`, `<label for="variables">Variables</label>`,
		`<label for="sample">Sample data</label>`, ">Preview</button>", ">Save</button>")

	for i, subject := range []string{"Welcome {{.name}}", "Welcome aboard, {{.name}}"} {
		r := b.submit(base+"/new", base+"/save", templateForm("welcome", subject, "Hi {{.name}}", "", "name", "{}"))
		if r.status != http.StatusSeeOther || r.location != base+"/welcome" {
			t.Fatalf("save %d: %d %q\n%s", i+1, r.status, r.location, r.body)
		}
	}
	wantIn(t, "the editor after two saves", b.get(base+"/welcome"), "Version 2.", "Welcome aboard, {{.name}}")
	v1, err := rig.tmpls.Get("app@example.com", "welcome", 1)
	if err != nil || v1.Subject != "Welcome {{.name}}" {
		t.Fatalf("version 1: %+v, %v", v1, err)
	}

	op := rig.signedIn(t, operatorName)
	list := op.get(base)
	wantIn(t, "the operator's Templates page", list, `href="/users/app@example.com/templates/welcome"`, "<td data-label=\"Version\">2</td>")

	// A template the API refuses shows its own words.
	r := b.submit(base+"/new", base+"/save", templateForm("bad", "x", "{{.name", "", "", "{}"))
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `role="alert"`) {
		t.Fatalf("invalid template: %d\n%s", r.status, r.body)
	}
}

// Preview renders the form's template with the sample data: the subject,
// the text, and the HTML escaped into the srcdoc of an iframe that is
// sandboxed without scripts; the page keeps the CSP.
func TestTemplatePreviewInSandboxedIframe(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	b := rig.signedIn(t, "app@example.com")
	base := "/users/app@example.com/templates"

	r := b.submit(base+"/new", base+"/preview", templateForm("welcome", "Hello {{.name}}", "Hi {{.name}}",
		`<p class="x">Hello <b>{{.name}}</b></p><script>alert(1)</script>`, "name", `{"name": "Ada <3"}`))
	if r.status != http.StatusOK {
		t.Fatalf("preview: %d\n%s", r.status, r.body)
	}
	wantIn(t, "the preview", r, "<dd>Hello Ada &lt;3</dd>", "Hi Ada &lt;3", `<iframe class="preview-html" title="HTML preview" sandbox srcdoc="`,
		// The rendered HTML (the name escaped by html/template: &lt;3),
		// escaped once more as the attribute's value.
		`&lt;p class=&#34;x&#34;&gt;Hello &lt;b&gt;Ada &amp;lt;3&lt;/b&gt;&lt;/p&gt;`)
	wantNotIn(t, "the preview", r, "allow-scripts", "<script>alert(1)", `<p class="x">`)
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("the preview page's CSP: %q", csp)
	}
	if _, err := rig.tmpls.Get("app@example.com", "welcome", 0); err == nil {
		t.Error("Preview saved the template")
	}
}

// A declared variable missing from the sample data is the API's 422, in
// its words, in the editor.
func TestTemplatePreviewMissingVariable(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	b := rig.signedIn(t, "app@example.com")
	base := "/users/app@example.com/templates"
	r := b.submit(base+"/new", base+"/preview", templateForm("welcome", "Hello {{.name}}", "Hi {{.name}}", "", "name, plan", `{"name": "Ada"}`))
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("preview without plan: %d\n%s", r.status, r.body)
	}
	wantIn(t, "the editor", r, `role="alert"`, "needs variable &#34;plan&#34;", "Hi {{.name}}")
}

// A sender sees only its own templates: another user's are not found.
func TestTemplatesSenderOnlyItsOwn(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	rig.addSender(t, "other@example.com")
	b := rig.signedIn(t, "app@example.com")
	other := "/users/other@example.com/templates"
	for _, path := range []string{other, other + "/new", other + "/welcome"} {
		if r := b.get(path); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
	csrf := b.csrf("/users/app@example.com")
	for _, path := range []string{other + "/save", other + "/preview"} {
		form := templateForm("welcome", "s", "t", "", "", "{}")
		form.Set("csrf", csrf)
		if r := b.post(path, form); r.status != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, r.status)
		}
	}
	if list, _ := rig.tmpls.List("other@example.com"); len(list) != 0 {
		t.Errorf("the sender saved a template for another user: %+v", list)
	}
}
