package web

import (
	"net/http"
	"strings"

	"outbound/suppression"
)

// Lift asks first, like a message's actions: the row's Lift button opens
// the confirmation page (GET /suppressions/lift?addr=&user=), whose
// button posts the lift with confirmed=yes. A POST without it only shows
// the question.

// LiftPage is the data of the confirmation page.
type LiftPage struct {
	Entry suppression.Entry
	// Back is the page the actor came from: the Suppressions page, or a
	// sender's Messages page.
	Back string
}

// suppressionLiftConfirm is GET /suppressions/lift?addr=&user=.
func (h *handler) suppressionLiftConfirm(w http.ResponseWriter, r *http.Request) {
	h.confirmLift(w, r, r.URL.Query().Get("addr"), r.URL.Query().Get("user"))
}

// suppressionLift is POST /suppressions/lift: addr no longer suppressed
// on user's list (DELETE /api/suppressions/{addr}?user=). A sender lifts
// only its own: it never names a user, and the API answers for itself.
func (h *handler) suppressionLift(w http.ResponseWriter, r *http.Request) {
	addr, user := r.PostFormValue("addr"), liftUser(r, r.PostFormValue("user"))
	if r.PostFormValue("confirmed") != "yes" {
		h.confirmLift(w, r, addr, user)
		return
	}
	back := liftBack(r)
	if err := h.api(r).DeleteSuppression(addr, user); err != nil {
		h.apiRefused(w, r, back, err)
		return
	}
	whom := ""
	if currentActor(r).Operator() {
		whom = forWhom(user)
	}
	h.redirect(w, r, back, ok("%s is no longer suppressed%s: mail to it is accepted again.", addr, whom))
}

// confirmLift shows the question about the active entry of addr on
// user's list; one the actor cannot see is not found.
func (h *handler) confirmLift(w http.ResponseWriter, r *http.Request, addr, user string) {
	user = liftUser(r, user)
	list, err := h.api(r).Suppressions(user)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	for _, e := range list {
		if strings.EqualFold(e.Addr, strings.TrimSpace(addr)) && (user == "" || e.User == user) {
			h.page(w, r, "suppression_lift", liftNav(r), LiftPage{Entry: e, Back: liftBack(r)})
			return
		}
	}
	h.notFound(w, r)
}

// liftUser is the list to lift from as the request names it; a sender's
// own always ("", which the API reads as the acting sender).
func liftUser(r *http.Request, user string) string {
	if !currentActor(r).Operator() {
		return ""
	}
	return strings.TrimSpace(user)
}

// liftBack is where a lift returns: the page its list is on.
func liftBack(r *http.Request) string {
	if currentActor(r).Operator() {
		return "/suppressions"
	}
	return "/messages#suppressions"
}

func liftNav(r *http.Request) string {
	if currentActor(r).Operator() {
		return "suppressions"
	}
	return "messages"
}
