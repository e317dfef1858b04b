package web

import (
	"fmt"
	"net/http"

	"outbound/admin"
)

// usersMove is POST /users/move, Move selected: the users ticked in the
// table to the route chosen, all of them or none (the API moves them in
// one transaction).
func (h *handler) usersMove(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	users, to := r.PostForm["user"], r.PostFormValue("route")
	if len(users) == 0 {
		h.redirect(w, r, "/users", failed("Nothing moved: tick the users to move first."))
		return
	}
	req := admin.RouteRequest{Users: users}
	if to == "" || to == "default" {
		req.Default = true
	} else {
		req.Smarthost = to
	}
	res, err := h.api(r).SetRoutes(req)
	if err != nil {
		h.redirect(w, r, "/users", failed("Nothing moved: %v", err))
		return
	}
	h.redirect(w, r, "/users", ok("%s moved to %s.", plural(len(res.Users), "user"), routeName(res.Route)))
}

// plural is "1 user", "3 users".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// routeName names a route for people: "the default route" or the
// smarthost's name.
func routeName(route string) string {
	if route == "default" || route == "" {
		return "the default route"
	}
	return route
}
