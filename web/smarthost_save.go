package web

import (
	"net/http"

	"outbound/admin"
)

// smarthostSave is POST /smarthosts/{name}, the edit form's Save (and
// Save anyway): tested, and saved if the test passes or the failing one
// is saved anyway; a new host, port or TLS mode needs the password again.
func (h *handler) smarthostSave(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f := smtpFormFrom(r)
	req, err := f.updateRequest(r.PostFormValue("force") == "1")
	var res *admin.SmarthostResult
	if err == nil {
		res, err = h.api(r).UpdateSmarthost(name, req)
	} else {
		err = &admin.Error{Status: http.StatusBadRequest, Message: err.Error()}
	}
	if err != nil {
		if st := apiStatus(err); st < 400 || st >= 500 || st == http.StatusNotFound {
			h.apiFail(w, r, err)
			return
		}
		h.showSmarthost(w, r, apiStatus(err), name, &f, saveResult(res, err, f, r.URL.Path))
		return
	}
	h.redirect(w, r, r.URL.Path, savedFlash("Smarthost "+name+" saved", res))
}
