package web

import (
	"net/http"

	"outbound/admin"
)

// smarthostCheck is POST /smarthosts/new/test (the Add smarthost form) and
// POST /smarthosts/{name}/test (a smarthost's form), Test connection: the
// settings as entered, not saved; on a smarthost's page an empty password
// is its stored one (the API allows that only for the stored server).
// htmx gets the report alone; without script the page comes back with it.
func (h *handler) smarthostCheck(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f := smtpFormFrom(r)
	save := "/smarthosts/new"
	if name != "" {
		save = "/smarthosts/" + pathName(name)
	}
	req, err := f.testRequest()
	var t *TestResult
	switch {
	case f.captures():
		// Nothing to dial: the API's answer for a capture smarthost.
		t = testResult(admin.CaptureTestReport(), nil, f, save)
	case err != nil:
		t = &TestResult{Error: err.Error()}
	default:
		if name != "" && f.password == "" {
			req.Smarthost = name
		}
		rep, err := h.api(r).TestConnection(req)
		if st := apiStatus(err); st == http.StatusNotFound || (err != nil && st == 0) {
			h.apiFail(w, r, err)
			return
		}
		t = testResult(rep, err, f, save)
		// htmx leaves the form as it is, the typed password in it.
		t.RetypePassword = t.RetypePassword && !htmx(r)
	}
	switch {
	case htmx(r):
		h.fragment(w, r, "smarthosts", "conntest", t)
	case name == "":
		h.showSmarthosts(w, r, http.StatusOK, f, t)
	default:
		h.showSmarthost(w, r, http.StatusOK, name, &f, t)
	}
}
