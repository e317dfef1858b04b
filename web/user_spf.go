package web

import (
	"net/http"
	"net/url"

	"outbound/admin"
)

// SPFPage is the SPF section: each domain the user sends from, aligned
// with its route's upstream or not, and the exact record change.
type SPFPage struct {
	User   string
	Report *admin.SPFReport
	// Error is the API's message when the check could not run.
	Error string
}

// userSPF is GET /users/{name}/spf. The check asks DNS, so the user page
// does not wait for it: htmx loads this fragment into the page's SPF
// section, and without script the section links here, to the same as a
// page of its own.
func (h *handler) userSPF(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rep, err := h.api(r).UserSPF(name)
	p := SPFPage{User: name, Report: rep}
	if err != nil {
		if st := apiStatus(err); st == http.StatusNotFound || st == http.StatusForbidden {
			h.apiFail(w, r, err)
			return
		}
		p.Error, p.Report = err.Error(), nil
	}
	if htmx(r) {
		h.fragment(w, r, "user_spf", "spf", p)
		return
	}
	nav := "users"
	if !currentActor(r).Operator() {
		nav = "settings"
	}
	h.page(w, r, "user_spf", nav, p)
}

// pathName is a user or smarthost name as it goes in a path.
func pathName(name string) string { return url.PathEscape(name) }
