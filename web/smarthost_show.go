package web

import (
	"net/http"

	"outbound/admin"
	"outbound/smarthost"
)

// SmarthostPage is a smarthost's page: its settings and users, the edit
// form with its last test, and Delete (whose refusal, naming the users,
// comes back as the flash).
type SmarthostPage struct {
	Smarthost *admin.SmarthostView
	Edit      SMTPFields
	Path      string
}

// smarthostShow is GET /smarthosts/{name}.
func (h *handler) smarthostShow(w http.ResponseWriter, r *http.Request) {
	h.showSmarthost(w, r, http.StatusOK, r.PathValue("name"), nil, nil)
}

// showSmarthost draws a smarthost's page; f, when not nil, is its form as
// entered (never the password), t the result of its test or save.
func (h *handler) showSmarthost(w http.ResponseWriter, r *http.Request, status int, name string, f *SMTPForm, t *TestResult) {
	api := h.api(r)
	s, err := api.Smarthost(name)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	hosts, err := api.Smarthosts()
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	form := smtpFormOf(s.Preset, s.Host, s.Port, s.TLS, s.Username, s.Password)
	form.Fallback, form.Kind = s.Fallback, s.Kind
	if form.Kind == "" {
		form.Kind = smarthost.KindSMTP
	}
	if f != nil {
		f.Saved = form.Saved
		form = *f
	}
	edit := smtpFields(form)
	edit.NoPreset, edit.Test = true, t
	if s.Owner == "" {
		edit.Fallbacks, edit.Kinds = fallbacks(hosts, s.Name), smarthostKinds
	}
	h.render(w, r, status, "smarthost", "smarthosts", SmarthostPage{Smarthost: s, Edit: edit, Path: "/smarthosts/" + pathName(s.Name)})
}
