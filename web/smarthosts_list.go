package web

import (
	"net/http"

	"outbound/admin"
	"outbound/smarthost"
)

// SmarthostsPage is the Smarthosts page: the shared smarthosts, the
// users' own SMTP servers apart (each is set on its owner's page, and
// its smarthost name is internal), and the Add smarthost form with the
// result of its last test or refused save.
type SmarthostsPage struct {
	Shared, Own []admin.SmarthostView
	Add         SMTPFields
}

// smarthostsList is GET /smarthosts.
func (h *handler) smarthostsList(w http.ResponseWriter, r *http.Request) {
	h.showSmarthosts(w, r, http.StatusOK, SMTPForm{}, nil)
}

// showSmarthosts draws the Smarthosts page, the Add smarthost form as
// entered (never the password) with its test.
func (h *handler) showSmarthosts(w http.ResponseWriter, r *http.Request, status int, f SMTPForm, t *TestResult) {
	hosts, err := h.api(r).Smarthosts()
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	add := smtpFields(f)
	add.AddName, add.Test, add.Fallbacks, add.Kinds = true, t, fallbacks(hosts, ""), smarthostKinds
	p := SmarthostsPage{Add: add}
	for _, s := range hosts {
		if s.Owner == "" {
			p.Shared = append(p.Shared, s)
		} else {
			p.Own = append(p.Own, s)
		}
	}
	h.render(w, r, status, "smarthosts", "smarthosts", p)
}

// fallbacks are the smarthosts that self (a smarthost's name, "" for a new
// one) may fall back to: the shared ones but itself and those of kind
// capture (a fallback must send).
func fallbacks(hosts []admin.SmarthostView, self string) []string {
	out := []string{}
	for _, s := range hosts {
		if s.Owner == "" && s.Name != self && s.Kind != smarthost.KindCapture {
			out = append(out, s.Name)
		}
	}
	return out
}
