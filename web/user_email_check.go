package web

import (
	"net/http"
)

// userEmailCheck is POST /users/{name}/email/test, Test connection: the
// settings as entered are tested, not saved; with the password left
// empty, the stored one is used (the API allows it only for the stored
// server). htmx gets the report alone, to put in place; without script
// the whole page comes back with it.
func (h *handler) userEmailCheck(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f := smtpFormFrom(r)
	save := r.URL.Path[:len(r.URL.Path)-len("/test")]
	req, err := f.testRequest()
	var t *TestResult
	if err != nil {
		t = &TestResult{Error: err.Error()}
	} else {
		if f.password == "" {
			req.User = name
		}
		rep, err := h.api(r).TestConnection(req)
		if err != nil && apiStatus(err) == http.StatusNotFound {
			h.apiFail(w, r, err)
			return
		}
		t = testResult(rep, err, f, save)
		// htmx leaves the form as it is, the typed password in it.
		t.RetypePassword = t.RetypePassword && !htmx(r)
	}
	if htmx(r) {
		h.fragment(w, r, "user", "conntest", t)
		return
	}
	p, err := h.userPage(r)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	f.Saved = p.SMTP.Form.Saved
	p.SMTP.Form, p.SMTP.Test, p.Mode = f, t, "own"
	h.showUser(w, r, http.StatusOK, p)
}
