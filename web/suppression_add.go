package web

import (
	"net/http"
	"strings"

	"outbound/admin"
)

// suppressionAdd is POST /suppressions (operators): puts an address on a
// user's list, or on the relay's one list. A refusal (no such user, a user
// needed under per-user scope, not an address) is the API's, shown above
// the form with what was entered.
func (h *handler) suppressionAdd(w http.ResponseWriter, r *http.Request) {
	f := SuppressionForm{Addr: strings.TrimSpace(r.PostFormValue("addr")),
		User: strings.TrimSpace(r.PostFormValue("user")), Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	e, err := h.api(r).AddSuppression(admin.SuppressionRequest{Addr: f.Addr, User: f.User, Reason: f.Reason})
	if err != nil {
		if st := apiStatus(err); st < 400 || st >= 500 {
			h.apiFail(w, r, err)
			return
		}
		f.Error = err.Error()
		h.showSuppressions(w, r, apiStatus(err), f)
		return
	}
	h.redirect(w, r, "/suppressions", ok("%s is suppressed%s.", e.Addr, forWhom(e.User)))
}

// forWhom names whose list an entry is on, for a sentence.
func forWhom(user string) string {
	if user == "" {
		return " for all users"
	}
	return " for " + user
}
