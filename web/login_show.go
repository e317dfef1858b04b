package web

import (
	"net/http"
)

// loginCookie carries the sign-in form's CSRF token before there is a
// session (a double-submit token: the form's hidden field must match the
// cookie), so that another site cannot sign a browser in to an account of
// its choosing.
const loginCookie = "outbound_login"

// LoginPage is the data of the sign-in page.
type LoginPage struct {
	// Token is the form's CSRF token (also in loginCookie).
	Token string
	// Next is the local path to go to after signing in.
	Next string
	// Login is echoed back after a failure; never the password.
	Login string
	// Error says why the last attempt failed; Notice is a neutral note
	// (signed out, session expired).
	Error, Notice string
}

// loginShow is GET /login: the sign-in form, Login and Password. Someone
// already signed in goes to the Overview.
func (h *handler) loginShow(w http.ResponseWriter, r *http.Request) {
	if h.session(r) != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	p := LoginPage{Next: localPath(r.URL.Query().Get("next"))}
	switch {
	case r.URL.Query().Has("signed-out"):
		p.Notice = "You have signed out."
	case r.URL.Query().Has("expired"):
		p.Notice = "Your session has expired: sign in again."
	}
	h.showLogin(w, r, http.StatusOK, p)
}

// showLogin renders the sign-in form with a fresh CSRF token.
func (h *handler) showLogin(w http.ResponseWriter, r *http.Request, status int, p LoginPage) {
	p.Token = randomToken()
	h.setCookie(w, r, loginCookie, p.Token, 0)
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, status, "login", "", p)
}

// localPath keeps next only when it is a path on this site, so the
// sign-in page cannot be used to send someone elsewhere afterwards.
func localPath(next string) string {
	if len(next) < 1 || next[0] != '/' || (len(next) > 1 && (next[1] == '/' || next[1] == '\\')) {
		return "/"
	}
	return next
}
