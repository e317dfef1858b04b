package web

import (
	"net/http"
	"net/url"
	"strings"

	"outbound/admin"
)

// userAdd is POST /users/new, the Add user form: the user is created by
// the API, and the operator goes on to its page; a refusal is shown on the
// Users page with what was entered (but the password).
func (h *handler) userAdd(w http.ResponseWriter, r *http.Request) {
	f := AddUserForm{Login: strings.TrimSpace(r.PostFormValue("login")), AllowFrom: r.PostFormValue("allow_from")}
	u, err := h.api(r).CreateUser(admin.CreateUserRequest{Name: f.Login, Password: r.PostFormValue("password"),
		AllowFrom: splitList(f.AllowFrom)})
	if err != nil {
		if st := apiStatus(err); st >= 400 && st < 500 {
			f.Error = err.Error()
			h.showUsers(w, r, st, f)
			return
		}
		h.apiFail(w, r, err)
		return
	}
	h.redirect(w, r, "/users/"+url.PathEscape(u.Name), ok("User %s added.", u.Name))
}

// userNew is GET /users/new: the Add user form is on the Users page.
func (h *handler) userNew(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/users#add-user", http.StatusSeeOther)
}

// splitList reads a list typed in one field: separated by commas, white
// space or new lines.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}
