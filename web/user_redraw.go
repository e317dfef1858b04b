package web

import "net/http"

// userRefused draws the user page again in answer to one section's form,
// which change puts in place: the API's refusal err at its status, or, with
// err nil, what the form made (a new API key) at 200. An error the page
// cannot show beside its form (the user gone, a server error, the API not
// answering) is the error page instead, as is a failure to read the page.
func (h *handler) userRefused(w http.ResponseWriter, r *http.Request, err error, change func(*UserPage)) {
	status := http.StatusOK
	if err != nil {
		status = apiStatus(err)
		if status == http.StatusNotFound || status < 400 || status >= 500 {
			h.apiFail(w, r, err)
			return
		}
	}
	p, perr := h.userPage(r)
	if perr != nil {
		h.apiFail(w, r, perr)
		return
	}
	change(p)
	h.showUser(w, r, status, p)
}
