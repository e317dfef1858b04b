package web

import (
	"net/http"
)

// smarthostDelete is POST /smarthosts/{name}/delete, behind a required
// confirmation box. The API refuses while users or another smarthost use
// it, naming them; that refusal is shown on the smarthost's page.
func (h *handler) smarthostDelete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	back := "/smarthosts/" + pathName(name)
	if r.PostFormValue("confirm") != "yes" {
		h.redirect(w, r, back, failed("Not deleted: tick the box to confirm first."))
		return
	}
	if err := h.api(r).DeleteSmarthost(name); err != nil {
		if st := apiStatus(err); st < 400 || st >= 500 || st == http.StatusNotFound {
			h.apiFail(w, r, err)
			return
		}
		h.redirect(w, r, back, failed("Not deleted: %v", err))
		return
	}
	h.redirect(w, r, "/smarthosts", ok("Smarthost %s deleted.", name))
}
