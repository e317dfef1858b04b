package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"outbound/auth"
)

// loginCheck is POST /login. A name that is an operator is checked only
// as an operator; any other as a sender's SMTP login. Failures are
// throttled as SMTP AUTH's are (see Throttle), and the answer never says
// which of login or password was wrong.
func (h *handler) loginCheck(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	form := r.PostFormValue("csrf")
	if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
		h.fail(w, r, http.StatusForbidden, "This sign-in form has expired or did not come from this site (missing or wrong CSRF token). Open the sign-in page again.")
		return
	}
	login, password := r.PostFormValue("login"), r.PostFormValue("password")
	p := LoginPage{Next: localPath(r.PostFormValue("next")), Login: login}
	if login == "" || password == "" {
		p.Error = "Enter your login and your password."
		h.showLogin(w, r, http.StatusBadRequest, p)
		return
	}
	source := h.sourceOf(r)
	if h.Throttle != nil {
		left, refused := h.Throttle.SourceRefused(source)
		if !refused {
			left, refused = h.Throttle.LoginRefused(source, login)
		}
		if refused {
			p.Error = fmt.Sprintf("Too many failed sign-ins from your address: try again in %s.", roundUp(left))
			h.showLogin(w, r, http.StatusTooManyRequests, p)
			return
		}
		h.Throttle.WaitForLogin(login)
	}

	kind, credential, err := h.verify(login, password)
	if err != nil {
		if !errors.Is(err, auth.ErrBadCredentials) {
			h.Logger.Error("sign-in check failed", "err", err)
			h.fail(w, r, http.StatusInternalServerError, "The relay could not check your sign-in; its log says why.")
			return
		}
		if h.Throttle != nil {
			h.Throttle.Fail(source, login)
		}
		h.Logger.Info("web sign-in failed", "login", login, "source", source)
		p.Error = "Wrong login or password."
		h.showLogin(w, r, http.StatusUnauthorized, p)
		return
	}
	sess, err := h.Sessions.Create(kind, login, credential, h.Now())
	if err != nil {
		h.Logger.Error("creating session", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "The relay could not start your session; its log says why.")
		return
	}
	h.Logger.Info("web sign-in", "kind", kind, "login", login, "source", source)
	h.setCookie(w, r, loginCookie, "", -1)
	h.setCookie(w, r, sessionCookie, sess.ID, 0)
	http.Redirect(w, r, p.Next, http.StatusSeeOther)
}

// verify checks login and password and says who signed in, with the
// fingerprint of its password hash.
func (h *handler) verify(login, password string) (kind, credential string, err error) {
	isOperator, err := h.Operators.Exists(login)
	if err != nil {
		return "", "", err
	}
	if isOperator {
		op, err := h.Operators.Verify(login, password)
		if err != nil {
			return "", "", err
		}
		return KindOperator, credentialOf(op.PasswordHash), nil
	}
	u, err := h.Users.Verify(login, password)
	if err != nil {
		return "", "", err
	}
	return KindSender, credentialOf(u.PasswordHash), nil
}

// sourceOf names where the request comes from, for the throttle: its
// address, or its /64 for IPv6 (auth.SourceOf).
func (h *handler) sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	return auth.SourceOf(ip)
}

// roundUp says how long to wait, in whole seconds or minutes.
func roundUp(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d seconds", int(d.Seconds()+0.999))
	}
	return fmt.Sprintf("%d minutes", int(d.Minutes()+0.999))
}
