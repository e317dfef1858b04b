package web

import (
	"net/http"

	"outbound/route"
)

// Routes names the routes of messages and the upstreams of their attempts
// as people know them. A user's own SMTP server is a smarthost with an
// internal name ("own-" and the login, see admin.OwnNamePrefix) that no
// one chose: the pages say "Own SMTP server" instead, and lead to its
// owner's page, where it is set, rather than to the smarthost's.
type Routes struct {
	// owners maps the name of each own smarthost the actor may know of
	// to its owner.
	owners map[string]string
	// operator links shared smarthosts and owners to their pages; a
	// sender has no page for either but its own E-mail settings.
	operator bool
	// self is the signed-in sender, "" for an operator.
	self string
}

// RouteLabel is a route as a page shows it.
type RouteLabel struct {
	// Text is "Default route", "Own SMTP server" or a shared smarthost's name.
	Text string
	// Owner is the user whose own SMTP server this is; "" for others.
	// Yours says the owner is the signed-in sender.
	Owner string
	Yours bool
	// Default says Text is the default route (shown quieter).
	Default bool
	// Link is the page to follow for it; "" for none.
	Link string
}

// routeNames looks up which smarthosts are users' own: for an operator
// all of them (GET /api/smarthosts); for a sender only its own, the
// one it may know of (GET /api/users/{self}).
func (h *handler) routeNames(r *http.Request) (Routes, error) {
	a, api := currentActor(r), h.api(r)
	rs := Routes{owners: map[string]string{}, operator: a.Operator()}
	if a.Operator() {
		hosts, err := api.Smarthosts()
		if err != nil {
			return rs, err
		}
		for _, s := range hosts {
			if s.Owner != "" {
				rs.owners[s.Name] = s.Owner
			}
		}
		return rs, nil
	}
	rs.self = a.Name
	u, err := api.User(a.Name)
	if err != nil {
		return rs, err
	}
	if u.OwnSmarthost != nil {
		rs.owners[u.OwnSmarthost.Name] = a.Name
	}
	return rs, nil
}

// Of labels a route or an attempt's upstream: "" and "default" are the
// default route; anything else not an own smarthost (a shared one, a
// fallback's "x (fallback of y)", "-") keeps its name.
func (rs Routes) Of(name string) RouteLabel {
	switch owner := rs.owners[name]; {
	case name == "" || name == route.DefaultName:
		return RouteLabel{Text: "Default route", Default: true}
	case owner != "":
		l := RouteLabel{Text: "Own SMTP server", Owner: owner, Yours: owner == rs.self}
		if rs.operator || owner == rs.self {
			l.Link = "/users/" + pathName(owner)
		}
		return l
	case rs.operator && validRouteName(name):
		return RouteLabel{Text: name, Link: "/smarthosts/" + pathName(name)}
	}
	return RouteLabel{Text: name}
}

// validRouteName says name can be a smarthost's (letters, digits, '.',
// '-', '_'), so that an attempt's "x (fallback of y)" or "-" is not
// linked as one.
func validRouteName(name string) bool {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return name != ""
}
