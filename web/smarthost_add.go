package web

import (
	"net/http"

	"outbound/admin"
	"outbound/smarthost"
)

// smarthostAdd is POST /smarthosts/new, Add smarthost (and Save anyway):
// tested, and saved if the test passes or the failing one is saved anyway.
func (h *handler) smarthostAdd(w http.ResponseWriter, r *http.Request) {
	f := smtpFormFrom(r)
	req, err := f.addRequest(r.PostFormValue("force") == "1")
	var res *admin.SmarthostResult
	if err == nil {
		res, err = h.api(r).AddSmarthost(req)
	} else {
		err = &admin.Error{Status: http.StatusBadRequest, Message: err.Error()}
	}
	if err != nil {
		status := apiStatus(err)
		if status < 400 || status >= 500 {
			h.apiFail(w, r, err)
			return
		}
		h.showSmarthosts(w, r, status, f, saveResult(res, err, f, "/smarthosts/new"))
		return
	}
	h.redirect(w, r, "/smarthosts/"+pathName(res.Smarthost.Name), savedFlash("Smarthost "+res.Smarthost.Name+" added", res))
}

// smarthostNew is GET /smarthosts/new: the Add smarthost form is on the
// Smarthosts page.
func (h *handler) smarthostNew(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/smarthosts#add-smarthost", http.StatusSeeOther)
}

// savedFlash says what a save did, and whether its test passed; a
// capture smarthost has nothing to test.
func savedFlash(what string, res *admin.SmarthostResult) *Flash {
	if res.Smarthost != nil && res.Smarthost.Kind == smarthost.KindCapture {
		return ok("%s: its users' mail is kept in the capture store, never sent.", what)
	}
	if res.Test != nil && !res.Test.OK {
		return failed("%s, though the connection test failed at step %s: mail waits in the queue until the settings work.", what, res.Test.Failed().Name)
	}
	return ok("%s: the connection test passed.", what)
}
