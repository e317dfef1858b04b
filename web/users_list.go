package web

import (
	"net/http"

	"outbound/admin"
)

// UsersPage is the Users page: every user with its route and its sending
// against its limits, the Move selected form (the bulk route change) and
// the Add user form.
type UsersPage struct {
	Users []UserRow
	// Routes are the Route choices of Move selected: the default route and
	// the shared smarthosts (a user's own SMTP server is its owner's only).
	Routes []Choice
	Add    AddUserForm
}

// UserRow is one user in the table.
type UserRow struct {
	admin.UserView
	Usage admin.UsageView
	// Own says the route is the user's own SMTP server.
	Own bool
}

// AddUserForm is the Add user form as entered (never the password), and
// the API's refusal of it.
type AddUserForm struct {
	Login, AllowFrom string
	Error            string
}

// usersList is GET /users.
func (h *handler) usersList(w http.ResponseWriter, r *http.Request) {
	h.showUsers(w, r, http.StatusOK, AddUserForm{})
}

// showUsers draws the Users page with the Add user form as given.
func (h *handler) showUsers(w http.ResponseWriter, r *http.Request, status int, add AddUserForm) {
	api := h.api(r)
	users, err := api.Users()
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	usage, err := api.Usage()
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	hosts, err := api.Smarthosts()
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	byName := map[string]admin.UsageView{}
	for _, u := range usage {
		byName[u.User] = u
	}
	p := UsersPage{Add: add, Routes: []Choice{{"default", "Default route"}}}
	owned := map[string]bool{}
	for _, s := range hosts {
		if s.Owner == "" {
			p.Routes = append(p.Routes, Choice{s.Name, s.Name})
		} else {
			owned[s.Name] = true
		}
	}
	for _, u := range users {
		p.Users = append(p.Users, UserRow{UserView: u, Usage: byName[u.Name], Own: owned[u.Route]})
	}
	h.render(w, r, status, "users", "users", p)
}
