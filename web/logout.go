package web

import "net/http"

// logout is POST /logout (the Sign out button on every page): the session
// ends on the server, not only in the browser.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	a := currentActor(r)
	if err := h.Sessions.Delete(a.ID); err != nil {
		h.Logger.Error("ending session", "err", err)
	}
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login?signed-out", http.StatusSeeOther)
}
