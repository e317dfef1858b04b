package web

import (
	"net/http"
	"testing"
)

// The editor's Preview goes through the send API's own checks: a template
// that would spin the relay's CPU is refused, in the API's words, before
// it runs, and a save of it too.
func TestTemplatePreviewRefusesSpinningTemplate(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	b := rig.signedIn(t, "app@example.com")
	base := "/users/app@example.com/templates"
	for _, c := range []struct{ text, want string }{
		{"{{range 20000000000}}{{end}}", "{{range 20000000000}} ranges over a constant (20000000000)"},
		{"{{range .a}}{{range $.a}}{{range $.a}}{{end}}{{end}}{{end}}", "{{range .a}} holds ranges 3 deep"},
	} {
		for _, action := range []string{"/preview", "/save"} {
			r := b.submit(base+"/new", base+action, templateForm("spin", "s", c.text, "", "", `{"a": [1, 2]}`))
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("%s of %s: %d\n%s", action, c.text, r.status, r.body)
			}
			wantIn(t, "the editor", r, `role="alert"`, c.want)
		}
	}
	if _, err := rig.tmpls.Get("app@example.com", "spin", 0); err == nil {
		t.Error("a refused template was saved")
	}
}
