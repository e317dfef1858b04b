package admin

import (
	"fmt"
	"net/http"
	"net/mail"
	"strings"

	"outbound/suppression"
)

// SuppressionRequest is the body of POST /api/suppressions.
type SuppressionRequest struct {
	// User is whose list the address goes on. Required under
	// [suppression] scope = "user"; under "relay" there is one list and
	// User only records who added it.
	User string `json:"user,omitempty"`
	// Addr is the recipient address to stop sending to.
	Addr string `json:"addr"`
	// Reason is quoted in the relay's refusal; "added by the operator"
	// when empty.
	Reason string `json:"reason,omitempty"`
}

// scoped is what tells the configured scope (suppression.Bolt does); a
// store that does not is taken as per user, the default.
type scoped interface{ Scope() suppression.Scope }

func (a *api) suppressionScope() suppression.Scope {
	if s, ok := a.Suppressions.(scoped); ok {
		return s.Scope()
	}
	return suppression.PerUser
}

func (a *api) noSuppressions() error {
	if a.Suppressions == nil {
		return &httpError{status: http.StatusNotImplemented, msg: "this server keeps no suppression list"}
	}
	return nil
}

// suppressionUser is the user a suppression request is about: the
// ?user= asked for, or the sender acting for itself, which may not ask
// for another.
func suppressionUser(r *http.Request) (string, error) {
	user := r.URL.Query().Get("user")
	if s := actingSender(r); s != "" {
		if user != "" && user != s {
			return "", forbidden("sender %s may see and lift only its own suppressions, not %s's", s, user)
		}
		return s, nil
	}
	return user, nil
}

// listSuppressions answers the active entries: one user's (a sender's
// own), or every one for an operator that names no user.
func (a *api) listSuppressions(w http.ResponseWriter, r *http.Request) error {
	if err := a.noSuppressions(); err != nil {
		return err
	}
	user, err := suppressionUser(r)
	if err != nil {
		return err
	}
	list, err := a.Suppressions.List(user)
	if err != nil {
		return err
	}
	if list == nil {
		list = []suppression.Entry{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// checkAddr accepts a bare address (local@domain), as RCPT gives it.
func checkAddr(addr string) error {
	if addr == "" {
		return badRequest("addr is required: the recipient address to suppress")
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr || a.Name != "" {
		return badRequest("addr must be a bare e-mail address such as bob@example.com, got %q", addr)
	}
	return nil
}

// addSuppression puts an address on a list by hand (kind "manual", which
// expires like a bounce). Operators only: under scope "relay" one entry
// stops every user's mail.
func (a *api) addSuppression(w http.ResponseWriter, r *http.Request) error {
	if err := a.noSuppressions(); err != nil {
		return err
	}
	var req SuppressionRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	req.Addr = strings.TrimSpace(req.Addr)
	if err := checkAddr(req.Addr); err != nil {
		return err
	}
	if req.User == "" && a.suppressionScope() == suppression.PerUser {
		return badRequest(`user is required: under [suppression] scope = "user" each user has its own list`)
	}
	if req.User != "" {
		if _, err := a.Users.Get(req.User); err != nil {
			return err
		}
	}
	if req.Reason == "" {
		req.Reason = "added by the operator"
	}
	e := suppression.Entry{User: req.User, Addr: req.Addr, Kind: suppression.Manual, Reason: req.Reason}
	if err := a.Suppressions.Add(e); err != nil {
		return err
	}
	added, err := a.Suppressions.Lookup(req.User, req.Addr)
	if err != nil {
		return err
	}
	if added == nil {
		// A complaint was there already and stays (suppression.Bolt.Put).
		return fmt.Errorf("suppression of %s was not stored", req.Addr)
	}
	a.Logger.Info("suppression added", "user", req.User, "addr", req.Addr)
	writeJSON(w, http.StatusCreated, added)
	return nil
}

// deleteSuppression lifts a suppression. A sender lifts only its own
// (under scope "relay", only one its own mail caused). An operator who
// names no user under scope "user" lifts the address from every list,
// which is what the relay's refusal tells a sender to ask for.
func (a *api) deleteSuppression(w http.ResponseWriter, r *http.Request) error {
	if err := a.noSuppressions(); err != nil {
		return err
	}
	addr := r.PathValue("addr")
	user, err := suppressionUser(r)
	if err != nil {
		return err
	}
	notFound := &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("no active suppression of %s", addr)}
	if user != "" {
		notFound.msg += " for " + user
	}
	var lift []string // the users whose entry goes
	switch {
	case actingSender(r) != "":
		e, err := a.Suppressions.Lookup(user, addr)
		if err != nil {
			return err
		}
		if e == nil || e.User != user {
			return notFound
		}
		lift = []string{user}
	case user != "" || a.suppressionScope() == suppression.RelayWide:
		lift = []string{user}
	default:
		all, err := a.Suppressions.List("")
		if err != nil {
			return err
		}
		for _, e := range all {
			if strings.EqualFold(e.Addr, strings.TrimSpace(addr)) {
				lift = append(lift, e.User)
			}
		}
	}
	found := false
	for _, u := range lift {
		ok, err := a.Suppressions.Delete(u, addr)
		if err != nil {
			return err
		}
		found = found || ok
	}
	if !found {
		return notFound
	}
	a.Logger.Info("suppression lifted", "user", user, "addr", addr, "by_sender", actingSender(r) != "")
	writeJSON(w, http.StatusOK, map[string]string{"deleted": addr})
	return nil
}
