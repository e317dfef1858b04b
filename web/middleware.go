package web

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/url"
)

// contentSecurityPolicy allows only this origin's own scripts, styles and
// images (and data: images), no inline script or style attribute, no
// framing, forms posting only here. Every response carries it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// securityHeaders sets the headers every response needs, pages and
// assets alike.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// sessionCookie holds the session's ID; nothing else about the session
// leaves the server.
const sessionCookie = "outbound_session"

type actorKey struct{}

// currentActor is the signed-in session of a request that went through
// signedIn (or one of the wrappers built on it); nil otherwise.
func currentActor(r *http.Request) *Session {
	s, _ := r.Context().Value(actorKey{}).(*Session)
	return s
}

// signedIn lets the request through only with a live session: otherwise a
// GET is sent to the sign-in page (and back here afterwards), anything
// else gets 403. Each request restarts the session's idle time. A POST
// must carry the session's CSRF token, in the form field "csrf" or (htmx)
// the X-CSRF-Token header.
func (h *handler) signedIn(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := h.session(r)
		if sess == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				q := url.Values{}
				if r.URL.Path != "/" {
					q.Set("next", r.URL.RequestURI())
				}
				if _, err := r.Cookie(sessionCookie); err == nil {
					q.Set("expired", "")
				}
				target := "/login"
				if len(q) > 0 {
					target += "?" + q.Encode()
				}
				http.Redirect(w, r, target, http.StatusSeeOther)
				return
			}
			h.fail(w, r, http.StatusForbidden, "Your session has ended: sign in again, then repeat what you were doing.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !validCSRF(r, sess.CSRF) {
			h.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this site (missing or wrong CSRF token). Reload the page and try again.")
			return
		}
		// The flash was read into sess; the next page will not show it again.
		h.Sessions.Touch(sess.ID, h.Now(), nil)
		// Pages are personal: never stored by a browser or a proxy.
		w.Header().Set("Cache-Control", "no-store")
		next(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, sess)))
	})
}

// session is the request's live session, or nil.
func (h *handler) session(r *http.Request) *Session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	sess, err := h.Sessions.Get(c.Value, h.Now())
	if err != nil {
		h.Logger.Error("reading session", "err", err)
		return nil
	}
	if sess != nil && !h.accountUnchanged(sess) {
		h.Sessions.Delete(sess.ID)
		return nil
	}
	return sess
}

// accountUnchanged reports whether the session's account still exists
// with the password it signed in with: removing an operator or a user, or
// changing its password, signs out its browsers at their next request.
func (h *handler) accountUnchanged(sess *Session) bool {
	var hash []byte
	if sess.Operator() {
		op, err := h.Operators.Get(sess.Name)
		if err != nil {
			return false
		}
		hash = op.PasswordHash
	} else {
		u, err := h.Users.Get(sess.Name)
		if err != nil {
			return false
		}
		hash = u.PasswordHash
	}
	return subtle.ConstantTimeCompare([]byte(credentialOf(hash)), []byte(sess.Credential)) == 1
}

// operatorOnly is signedIn for the operators' pages: a sender gets 403.
func (h *handler) operatorOnly(next http.HandlerFunc) http.Handler {
	return h.signedIn(func(w http.ResponseWriter, r *http.Request) {
		if !currentActor(r).Operator() {
			h.fail(w, r, http.StatusForbidden, "This page is for the relay's operators.")
			return
		}
		next(w, r)
	})
}

// selfOrOperator is signedIn for a user's pages (/users/{name}...): an
// operator may see any user, a sender only itself. Another user is "not
// found" to a sender, so a sender cannot even learn which logins exist.
func (h *handler) selfOrOperator(next http.HandlerFunc) http.Handler {
	return h.signedIn(func(w http.ResponseWriter, r *http.Request) {
		a := currentActor(r)
		if !a.Operator() && r.PathValue("name") != a.Name {
			h.notFound(w, r)
			return
		}
		next(w, r)
	})
}

// validCSRF compares the request's token with want in constant time.
func validCSRF(r *http.Request, want string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// secure reports whether cookies set in answer to r must be Secure.
func (h *handler) secure(r *http.Request) bool { return h.Secure || r.TLS != nil }

// setCookie sets a cookie readable only by this site's pages, over HTTP:
// HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS. maxAge < 0
// deletes it; 0 makes it last as long as the browser.
func (h *handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(r)})
}
