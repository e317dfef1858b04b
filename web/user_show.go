package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"outbound/admin"
)

// UserPage is a user's page, or for a sender its own E-mail settings:
// sections E-mail settings, Sender, Limits, Usage and SPF. Each form's
// state after a refused action (what was entered, the API's message, a
// connection test's report) is carried here so the page can be drawn
// again with it.
type UserPage struct {
	User *admin.UserDetail
	// Operator says the actor may change everything; a sender sees its
	// limits and allowed senders without a form.
	Operator bool
	// Path is the page's URL path, the forms' base.
	Path string

	// Mode is the E-mail settings radio: "default", "own", or "" when the
	// user is routed through a shared smarthost (set by an operator).
	Mode  string
	SMTP  SMTPFields
	Email string // the API's refusal of the E-mail settings

	Sender SenderForm
	Limits LimitsForm
	Usage  Usage
	// AppleProfile offers the profile download (Options.AppleProfile).
	AppleProfile bool
	// APIKeys is the API keys section (apikey_create.go).
	APIKeys APIKeysSection
}

// SenderForm is the Sender section as entered, and the API's refusal.
type SenderForm struct {
	DisplayName, ReplyTo, AllowFrom string
	// DSN is "Send delivery notifications by e-mail": off for a user
	// whose app takes its messages' fate from webhooks instead.
	DSN   bool
	Error string
}

// LimitsForm is the Limits section as entered, and the API's refusal.
type LimitsForm struct {
	PerHour, PerDay string
	Error           string
}

// userShow is GET /users/{name}.
func (h *handler) userShow(w http.ResponseWriter, r *http.Request) {
	p, err := h.userPage(r)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.showUser(w, r, http.StatusOK, p)
}

// userPage is the user page of the request's {name} as stored, every
// form filled from the stored settings.
func (h *handler) userPage(r *http.Request) (*UserPage, error) {
	name := r.PathValue("name")
	d, err := h.api(r).User(name)
	if err != nil {
		return nil, err
	}
	p := &UserPage{User: d, Operator: currentActor(r).Operator(), Path: "/users/" + url.PathEscape(d.Name),
		Usage: newUsage(&d.Usage, h.Now()), AppleProfile: h.AppleProfile != nil}
	switch {
	case d.Route == "default":
		p.Mode = "default"
	case d.OwnSmarthost != nil && d.Route == d.OwnSmarthost.Name:
		p.Mode = "own"
	}
	var form SMTPForm
	if s := d.OwnSmarthost; s != nil {
		form = smtpFormOf(s.Preset, s.Host, s.Port, s.TLS, s.Username, s.Password)
	}
	p.SMTP = ownSMTPFields(form, p.Operator, h.AllowPrivateHosts)
	p.Sender = SenderForm{DisplayName: d.DisplayName, ReplyTo: d.ReplyTo, AllowFrom: joinList(d.AllowFrom), DSN: d.DSN}
	p.Limits = LimitsForm{PerHour: strconv.Itoa(d.Limits.PerHour), PerDay: strconv.Itoa(d.Limits.PerDay)}
	if p.APIKeys, err = h.apiKeysSection(r, d.Name); err != nil {
		return nil, err
	}
	return p, nil
}

// showUser draws the user page with status.
func (h *handler) showUser(w http.ResponseWriter, r *http.Request, status int, p *UserPage) {
	nav := "users"
	if !p.Operator {
		nav = "settings"
	}
	h.render(w, r, status, "user", nav, p)
}

// joinList writes a list in one field, as splitList reads it.
func joinList(list []string) string { return strings.Join(list, ", ") }
