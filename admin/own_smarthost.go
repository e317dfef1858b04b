package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"outbound/internal/netutil"
	"outbound/smarthost"
)

// A user's own SMTP server ("E-mail settings → Own SMTP server" in the web
// interface) is a smarthost owned by that user (smarthost.Owner), named
// "own-" and the login, and the user is routed through it. It is created,
// tested and saved by the same code as a named smarthost (testThenSave),
// under two more rules: only its owner is routed through it, and when the
// sender itself chooses the host (ActingSenderHeader), the host must be
// on a public address, checked here by name and by delivery at every
// connection (smarthost.PublicOnly), unless Options.AllowPrivateHosts.

// OwnSmarthostRequest is the body of PUT /api/users/{name}/smarthost: the
// user's own SMTP server.
//
// An empty Password keeps the stored one, as long as host, port and TLS
// mode stay as they are: the stored password goes only where it went
// before. Without a username there is none. CAFile and the SPF settings
// are as for POST /api/smarthosts, for operators only; left empty, the
// stored ones are kept (PUT /api/smarthosts/{name} clears them).
type OwnSmarthostRequest struct {
	ConnectionSettings
	SPFInclude string   `json:"spf_include,omitempty"`
	SPFIPs     []string `json:"spf_ips,omitempty"`
	SPFPolicy  string   `json:"spf_policy,omitempty"`
	// Force saves the settings even when their connection test fails
	// ("Save anyway").
	Force bool `json:"force,omitempty"`
}

// operatorFields refuses, for a request made for a sender, the settings
// only operators may give: a file on the relay's machine, and the SPF
// rules the relay holds the sender's mail to.
func (req *OwnSmarthostRequest) operatorFields(r *http.Request) error {
	s := actingSender(r)
	if s == "" {
		return nil
	}
	switch {
	case req.CAFile != "":
		return errSenderField(s, "ca_file")
	case req.SPFInclude != "" || len(req.SPFIPs) > 0 || req.SPFPolicy != "":
		return errSenderField(s, "spf_include, spf_ips or spf_policy")
	}
	return nil
}

// ConnectionTestRequest is the body of POST /api/connection-test: settings
// to test without saving them. CAFile is for operators only.
type ConnectionTestRequest struct {
	ConnectionSettings
	// User, when Password is empty, names the user whose own SMTP server's
	// stored password to use; Smarthost names a smarthost for the same
	// (operators only). Either is used only while host, port and TLS mode
	// are the stored ones.
	User      string `json:"user,omitempty"`
	Smarthost string `json:"smarthost,omitempty"`
}

// OwnNamePrefix starts the name of every user's own smarthost.
const OwnNamePrefix = "own-"

// ownSmarthost returns the smarthost user owns, or nil when it has none.
func (a *api) ownSmarthost(user string) (*smarthost.Smarthost, error) {
	if a.Smarthosts == nil {
		return nil, nil
	}
	hosts, err := a.Smarthosts.List()
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if h.Owner == user {
			return h, nil
		}
	}
	return nil, nil
}

// newOwnName makes the name of user's own smarthost: "own-" and the login
// with every character a smarthost name cannot hold as '_', cut to fit,
// and a number after it if another smarthost has that name already.
func (a *api) newOwnName(user string) (string, error) {
	base := []byte(OwnNamePrefix + user)
	for i, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_", c) >= 0) {
			base[i] = '_'
		}
	}
	for n := 1; ; n++ {
		name := string(base)
		if n > 1 {
			suffix := fmt.Sprintf("-%d", n)
			name = string(base[:min(len(base), 64-len(suffix))]) + suffix
		} else if len(name) > 64 {
			name = name[:64]
		}
		if _, err := a.Smarthosts.Get(name); errors.Is(err, smarthost.ErrNotFound) {
			return name, nil
		} else if err != nil {
			return "", err
		}
	}
}

// checkSenderHost refuses, for a request made for a sender, a host that is
// not on a public address, unless the operator allows private hosts. A
// name that does not resolve passes: the connection test then says so
// step by step, and delivery checks each address it dials anyway.
func (a *api) checkSenderHost(r *http.Request, host string) error {
	if actingSender(r) == "" || a.AllowPrivateHosts {
		return nil
	}
	err := netutil.CheckPublicHost(r.Context(), a.Resolver, host)
	var np *netutil.NotPublicError
	if errors.As(err, &np) {
		return forbidden("your own SMTP server must be on a public address, but %v; only the operator can allow other addresses (web.allow_private_hosts)", np)
	}
	return nil
}

// storedPasswordFor is the stored password of stored, for settings h that
// leave the password empty; the error says to give it again when h would
// take it to another host, port or TLS mode.
func (a *api) storedPasswordFor(stored, h *smarthost.Smarthost) (string, error) {
	password, err := a.Smarthosts.Password(stored.Name)
	if err != nil {
		return "", err
	}
	// The stored password goes only where it went before: otherwise a
	// caller could point the settings at a server of its own and read the
	// password off the connection test's AUTH.
	if password != "" && (h.Host != stored.Host || h.Port != stored.Port || h.TLS != stored.TLS) {
		return "", badRequest("changing the host, port or TLS mode of smarthost %s requires its password again: give the password", stored.Name)
	}
	return password, nil
}

// putOwnSmarthost creates or updates the user's own SMTP server, tests
// it, saves it when the test passes (or the request forces it) and routes
// the user through it.
func (a *api) putOwnSmarthost(w http.ResponseWriter, r *http.Request) error {
	var req OwnSmarthostRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := req.operatorFields(r); err != nil {
		return err
	}
	user := r.PathValue("name")
	if _, err := a.Users.Get(user); err != nil {
		return err
	}
	stored, err := a.ownSmarthost(user)
	if err != nil {
		return err
	}
	var h smarthost.Smarthost
	if stored != nil {
		h = *stored
	} else if h.Name, err = a.newOwnName(user); err != nil {
		return err
	}
	if err := req.apply(&h); err != nil {
		return err
	}
	if req.CAFile != "" {
		h.CAFile = req.CAFile
	}
	if req.SPFInclude != "" {
		h.SPFInclude = req.SPFInclude
	}
	if len(req.SPFIPs) > 0 {
		h.SPFIPs = req.SPFIPs
	}
	if req.SPFPolicy != "" {
		h.SPFPolicy = normalPolicy(req.SPFPolicy)
	}
	h.Owner = user
	// Chosen by the sender: delivery will dial it on public addresses
	// only. Chosen by an operator: any address.
	h.PublicOnly = actingSender(r) != ""
	if err := h.Validate(); err != nil {
		return badRequest("%v", err)
	}
	if err := a.checkSenderHost(r, h.Host); err != nil {
		return err
	}
	password, newPassword := req.Password, &req.Password
	switch {
	case h.Username == "":
		password, newPassword = "", new(string) // no AUTH: no password kept
	case password != "":
	case stored == nil || len(stored.SealedPassword) == 0:
		return badRequest("username %q needs a password: give the password", h.Username)
	default:
		if password, err = a.storedPasswordFor(stored, &h); err != nil {
			return err
		}
		newPassword = nil
	}
	status := http.StatusOK
	if stored == nil {
		status = http.StatusCreated
	}
	return a.testThenSave(w, r, &h, password, req.Force, status, func(testOK bool) error {
		if stored == nil {
			if _, err := a.Smarthosts.Add(h, password); err != nil {
				return err
			}
		} else {
			err := a.Smarthosts.Update(h.Name, newPassword, func(s *smarthost.Smarthost) error {
				s.Host, s.Port, s.TLS, s.Username, s.Preset = h.Host, h.Port, h.TLS, h.Username, h.Preset
				s.CAFile, s.SPFInclude, s.SPFIPs, s.SPFPolicy = h.CAFile, h.SPFInclude, h.SPFIPs, h.SPFPolicy
				s.Owner, s.PublicOnly = h.Owner, h.PublicOnly
				return nil
			})
			if err != nil {
				return err
			}
		}
		if _, err := a.Users.SetRoute([]string{user}, h.Name); err != nil {
			return err
		}
		a.Logger.Info("own smarthost saved", "user", user, "smarthost", h.Name, "host", h.Host, "port", h.Port,
			"by_sender", h.PublicOnly, "password_changed", newPassword != nil, "test_ok", testOK)
		return nil
	})
}

// deleteOwnSmarthost puts the user back on the default route and deletes
// its own SMTP server, if it has one. The answer is the user's detail.
func (a *api) deleteOwnSmarthost(w http.ResponseWriter, r *http.Request) error {
	user := r.PathValue("name")
	u, err := a.Users.Get(user)
	if err != nil {
		return err
	}
	own, err := a.ownSmarthost(user)
	if err != nil {
		return err
	}
	if u.Route != "" {
		if _, err := a.Users.SetRoute([]string{user}, ""); err != nil {
			return err
		}
	}
	if own != nil {
		if err := a.Smarthosts.Delete(own.Name, a.usersOf); err != nil {
			return shError(err)
		}
	}
	a.Logger.Info("user back on the default route", "user", user, "deleted_smarthost", own != nil)
	if u, err = a.Users.Get(user); err != nil {
		return err
	}
	return a.writeUserDetail(w, u)
}

// testConnection tests settings without saving them; the answer is the
// report, with status 200 whether the test passed or not.
func (a *api) testConnection(w http.ResponseWriter, r *http.Request) error {
	var req ConnectionTestRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	sender := actingSender(r)
	switch {
	case sender != "" && req.Smarthost != "":
		return errSenderField(sender, "smarthost")
	case sender != "" && req.CAFile != "":
		return errSenderField(sender, "ca_file")
	case sender != "" && req.User != "" && req.User != sender:
		return forbidden("sender %s may use only its own stored password, not %s's", sender, req.User)
	case req.User != "" && req.Smarthost != "":
		return badRequest(`give "user" or "smarthost" (whose stored password to use), not both`)
	}
	h := smarthost.Smarthost{Name: "connection-test", CAFile: req.CAFile, PublicOnly: sender != ""}
	if err := req.apply(&h); err != nil {
		return err
	}
	if err := h.Validate(); err != nil {
		return badRequest("%v", err)
	}
	if err := a.checkSenderHost(r, h.Host); err != nil {
		return err
	}
	password := req.Password
	if password == "" && h.Username != "" && (req.User != "" || req.Smarthost != "") {
		var stored *smarthost.Smarthost
		var err error
		if req.Smarthost != "" {
			if stored, err = a.Smarthosts.Get(req.Smarthost); err != nil {
				return shError(err)
			}
		} else {
			if _, err := a.Users.Get(req.User); err != nil {
				return err
			}
			if stored, err = a.ownSmarthost(req.User); err != nil {
				return err
			} else if stored == nil {
				return badRequest("user %s has no own SMTP server with a stored password: give the password", req.User)
			}
		}
		if password, err = a.storedPasswordFor(stored, &h); err != nil {
			return err
		}
	}
	rep, err := a.connectionTest(r.Context(), &h, password)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
