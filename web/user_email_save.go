package web

import (
	"net/http"

	"outbound/admin"
)

// userEmailSave is POST /users/{name}/email, the E-mail settings' Save
// (and Save anyway): Default route drops the user's own SMTP server; Own
// SMTP server tests the settings and saves them if the test passes, or if
// the failing test is saved anyway (force). A refusal draws the page again
// with the report and the API's message.
func (h *handler) userEmailSave(w http.ResponseWriter, r *http.Request) {
	name, api := r.PathValue("name"), h.api(r)
	back := r.URL.Path[:len(r.URL.Path)-len("/email")]
	switch r.PostFormValue("mode") {
	case "default":
		if _, err := api.DeleteOwnSmarthost(name); err != nil {
			h.emailRefused(w, r, SMTPForm{}, &TestResult{Error: err.Error()}, err)
			return
		}
		h.redirect(w, r, back, ok("E-mail settings saved: mail leaves through the default route."))
		return
	case "own":
	default:
		h.redirect(w, r, back, failed("Choose Default route or Own SMTP server."))
		return
	}
	f := smtpFormFrom(r)
	req, err := f.ownRequest(r.PostFormValue("force") == "1")
	var res *admin.SmarthostResult
	if err == nil {
		res, err = api.SetOwnSmarthost(name, req)
	} else {
		err = &admin.Error{Status: http.StatusBadRequest, Message: err.Error()}
	}
	if err != nil {
		h.emailRefused(w, r, f, saveResult(res, err, f, r.URL.Path), err)
		return
	}
	if res.Test != nil && !res.Test.OK {
		h.redirect(w, r, back, failed("Saved anyway, though the connection test failed at step %s: mail waits in the queue until the settings work.", res.Test.Failed().Name))
		return
	}
	h.redirect(w, r, back, ok("E-mail settings saved: the connection test passed, and mail leaves through %s:%d.", res.Smarthost.Host, res.Smarthost.Port))
}

// emailRefused draws the user page again after a refused E-mail settings
// action: the form as entered (never the password), the test or refusal.
func (h *handler) emailRefused(w http.ResponseWriter, r *http.Request, f SMTPForm, t *TestResult, err error) {
	h.userRefused(w, r, err, func(p *UserPage) {
		if f != (SMTPForm{}) {
			f.Saved = p.SMTP.Form.Saved
			p.SMTP.Form, p.Mode = f, "own"
		}
		p.SMTP.Test = t
	})
}
