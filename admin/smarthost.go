package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"outbound/auth"
	"outbound/delivery"
	"outbound/provider"
	"outbound/route"
	"outbound/smarthost"
	"outbound/spf"
)

// SmarthostSummary is a smarthost's name and connection settings as the
// API shows them, wherever it shows a smarthost (its own page, a user's):
// the password only masked ("****xyz789"), never whole. Embedded, its
// fields are the JSON object's own.
type SmarthostSummary struct {
	Name string `json:"name"`
	// Kind is "capture" for a smarthost whose mail is kept in the
	// capture store, never sent (it has no host, port, TLS mode or
	// credentials); empty (absent from the JSON, as before smarthosts had
	// kinds) for an SMTP server.
	Kind     string `json:"kind,omitempty"`
	Preset   string `json:"preset,omitempty"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	TLS      string `json:"tls"`
	Username string `json:"username,omitempty"`
	// Password is the masked password, "" when there is none.
	Password string `json:"password,omitempty"`
}

// summary is h as SmarthostSummary shows it, the password masked.
func (a *api) summary(h *smarthost.Smarthost) SmarthostSummary {
	kind := ""
	if h.Captures() {
		kind = smarthost.KindCapture
	}
	return SmarthostSummary{Name: h.Name, Kind: kind, Preset: h.Preset, Host: h.Host, Port: h.Port, TLS: h.TLS,
		Username: h.Username, Password: a.Smarthosts.MaskedPassword(h)}
}

// SmarthostView is a smarthost as the API shows it: the password only
// masked, never whole.
type SmarthostView struct {
	SmarthostSummary
	CAFile string `json:"ca_file,omitempty"`
	// SPFInclude is the effective include: the smarthost's own or its preset's.
	SPFInclude string   `json:"spf_include,omitempty"`
	SPFIPs     []string `json:"spf_ips,omitempty"`
	// SPFPolicy is the smarthost's own SPF policy; "" follows the
	// configured default_route.spf_policy.
	SPFPolicy string `json:"spf_policy,omitempty"`
	Fallback  string `json:"fallback,omitempty"`
	// Owner is the user whose own SMTP server this is; "" for a shared
	// smarthost. Only its owner can be routed through it.
	Owner   string    `json:"owner,omitempty"`
	Users   []string  `json:"users"`
	Created time.Time `json:"created"`
}

// ConnectionSettings are how to reach an upstream and log in to it, as
// the requests that add, set or test one give them: embedded, its fields
// are the JSON object's own. With Preset, the preset fills Host, Port,
// TLS and Username where they are left empty.
type ConnectionSettings struct {
	Preset   string `json:"preset,omitempty"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	TLS      string `json:"tls,omitempty"`
	Username string `json:"username,omitempty"`
	// Password is the AUTH password; whether an empty one keeps a stored
	// one is for each request to say.
	Password string `json:"password,omitempty"`
	// CAFile is a PEM file of CAs to trust besides the system roots.
	CAFile string `json:"ca_file,omitempty"`
}

// apply sets h's host, port, TLS mode and username to c's, filled from
// c's preset where c leaves them empty, and records the preset ("" is
// none). The password and the CA file are the caller's to set: whether
// an empty one keeps the stored one depends on the request.
func (c ConnectionSettings) apply(h *smarthost.Smarthost) error {
	h.Host, h.Port, h.TLS, h.Username, h.Preset = c.Host, c.Port, c.TLS, c.Username, ""
	if c.Preset == "" {
		return nil
	}
	p, err := provider.Lookup(c.Preset)
	if err != nil {
		return badRequest("%v", err)
	}
	h.Preset = p.Name
	if h.Host == "" {
		h.Host = p.Host
	}
	if h.Port == 0 {
		h.Port = p.Port
	}
	if h.TLS == "" {
		h.TLS = string(p.TLS)
	}
	if h.Username == "" {
		h.Username = p.Username
	}
	return nil
}

// SmarthostRequest is the body of POST /api/smarthosts.
type SmarthostRequest struct {
	Name string `json:"name"`
	// Kind is "smtp" (empty: the default) or "capture", which takes
	// none of the settings below but the name.
	Kind string `json:"kind,omitempty"`
	ConnectionSettings
	SPFInclude string   `json:"spf_include,omitempty"`
	SPFIPs     []string `json:"spf_ips,omitempty"`
	SPFPolicy  string   `json:"spf_policy,omitempty"`
	Fallback   string   `json:"fallback,omitempty"`
	// Force saves the smarthost even when its connection test fails.
	Force bool `json:"force,omitempty"`
}

// SmarthostUpdateRequest is the body of PUT /api/smarthosts/{name}: only
// the fields given change. The connection is tested again before saving.
// Kind "capture" drops the SMTP settings and the password; back to "smtp",
// the request gives them again.
type SmarthostUpdateRequest struct {
	Kind       *string   `json:"kind,omitempty"`
	Host       *string   `json:"host,omitempty"`
	Port       *int      `json:"port,omitempty"`
	TLS        *string   `json:"tls,omitempty"`
	Username   *string   `json:"username,omitempty"`
	Password   *string   `json:"password,omitempty"`
	CAFile     *string   `json:"ca_file,omitempty"`
	SPFInclude *string   `json:"spf_include,omitempty"`
	SPFIPs     *[]string `json:"spf_ips,omitempty"`
	SPFPolicy  *string   `json:"spf_policy,omitempty"`
	Fallback   *string   `json:"fallback,omitempty"`
	Force      bool      `json:"force,omitempty"`
}

// SmarthostResult is the answer to adding, updating or testing a
// smarthost; on a refused save it comes with status 422 and Error set.
type SmarthostResult struct {
	Error     string                     `json:"error,omitempty"`
	Smarthost *SmarthostView             `json:"smarthost,omitempty"`
	Test      *delivery.ConnectionReport `json:"test,omitempty"`
	// Saved says whether the smarthost was stored.
	Saved bool `json:"saved"`
}

// RouteRequest is the body of POST /api/routes: either Users or From (a
// smarthost name, or "default") chooses the users; either Smarthost or
// Default the new route. All users change in one transaction, or none.
type RouteRequest struct {
	Users     []string `json:"users,omitempty"`
	From      string   `json:"from,omitempty"`
	Smarthost string   `json:"smarthost,omitempty"`
	Default   bool     `json:"default,omitempty"`
}

// RouteResult lists the users moved, with their limits on the new route.
type RouteResult struct {
	Route string      `json:"route"`
	Users []UsageView `json:"users"`
}

func (a *api) registerSmarthosts(mux *http.ServeMux) {
	mux.Handle("GET /api/smarthosts", a.authed(a.listSmarthosts))
	mux.Handle("POST /api/smarthosts", a.authed(a.addSmarthost))
	mux.Handle("GET /api/smarthosts/{name}", a.authed(a.showSmarthost))
	mux.Handle("PUT /api/smarthosts/{name}", a.authed(a.updateSmarthost))
	mux.Handle("DELETE /api/smarthosts/{name}", a.authed(a.deleteSmarthost))
	mux.Handle("POST /api/smarthosts/{name}/test", a.authed(a.testSmarthost))
	mux.Handle("POST /api/routes", a.authed(a.setRoutes))
	mux.Handle("PUT /api/users/{name}/smarthost", a.guarded(selfOnly, a.putOwnSmarthost))
	mux.Handle("DELETE /api/users/{name}/smarthost", a.guarded(selfOnly, a.deleteOwnSmarthost))
	mux.Handle("POST /api/connection-test", a.guarded(anyone, a.testConnection))
	mux.Handle("POST /api/key-rotate", a.authed(a.rotateKey))
	a.registerWebhookSecrets(mux)
}

// rotateKey seals every secret under a fresh master key: the smarthosts'
// passwords and provider webhook secrets, and, in the same transaction,
// the values of the stores registered with AlsoReseal (DKIM keys, webhook
// endpoints' signing secrets). The key itself is never part of the answer.
func (a *api) rotateKey(w http.ResponseWriter, r *http.Request) error {
	if err := a.Smarthosts.RotateKey(smarthost.NewKey()); err != nil {
		return &httpError{status: http.StatusConflict, msg: err.Error()}
	}
	res, err := a.sealedCounts()
	if err != nil {
		return err
	}
	a.Logger.Info("master key rotated", "reencrypted", res.Reencrypted, "smarthost_passwords", res.SmarthostPasswords,
		"provider_webhook_secrets", res.ProviderWebhookSecrets, "dkim_keys", res.DKIMKeys, "webhook_endpoint_secrets", res.WebhookEndpointSecrets)
	writeJSON(w, http.StatusOK, res)
	return nil
}

// sealedCounts counts what is sealed under the master key, by kind. The
// rotation re-seals all of it in one transaction (or nothing), so after
// one these are what it re-encrypted, give or take a change made since.
func (a *api) sealedCounts() (KeyRotation, error) {
	var res KeyRotation
	hosts, err := a.Smarthosts.List()
	if err != nil {
		return res, err
	}
	for _, h := range hosts {
		if len(h.SealedPassword) > 0 {
			res.SmarthostPasswords++
		}
		if len(h.SealedWebhookSecrets) > 0 {
			res.ProviderWebhookSecrets++
		}
	}
	if a.DKIM != nil {
		keys, err := a.DKIM.List("")
		if err != nil {
			return res, err
		}
		res.DKIMKeys = len(keys)
	}
	if a.Webhooks != nil {
		eps, err := a.Webhooks.List("")
		if err != nil {
			return res, err
		}
		res.WebhookEndpointSecrets = len(eps)
	}
	res.Reencrypted = res.SmarthostPasswords + res.ProviderWebhookSecrets + res.DKIMKeys + res.WebhookEndpointSecrets
	return res, nil
}

// KeyRotation is the answer to POST /api/key-rotate: never the key itself.
type KeyRotation struct {
	// Reencrypted is how many sealed values are now sealed under the new
	// key: the sum of the counts below.
	Reencrypted int `json:"reencrypted"`
	// SmarthostPasswords counts the smarthosts that have a password.
	SmarthostPasswords int `json:"smarthost_passwords"`
	// ProviderWebhookSecrets counts the smarthosts that have provider
	// webhook secrets (sealed together, one value per smarthost).
	ProviderWebhookSecrets int `json:"provider_webhook_secrets"`
	// DKIMKeys counts the DKIM private keys, retired ones included.
	DKIMKeys int `json:"dkim_keys"`
	// WebhookEndpointSecrets counts the users' webhook endpoints, each
	// with its signing secret.
	WebhookEndpointSecrets int `json:"webhook_endpoint_secrets"`
}

// shError gives smarthost errors their HTTP status.
func shError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, smarthost.ErrNotFound), errors.Is(err, auth.ErrNoSuchUser):
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, smarthost.ErrExists), errors.Is(err, smarthost.ErrInUse):
		return &httpError{status: http.StatusConflict, msg: err.Error()}
	}
	return err
}

func (a *api) usersOf(route string) ([]string, error) {
	users, err := a.Users.List()
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, u := range users {
		if u.Route == route {
			out = append(out, u.Name)
		}
	}
	return out, nil
}

// normalPolicy writes an SPF policy as stored ("Enforce " → "enforce");
// what is not a policy is kept for Smarthost.Validate to refuse by name.
func normalPolicy(s string) string {
	if p, err := spf.ParsePolicy(s); err == nil {
		return string(p)
	}
	return strings.TrimSpace(s)
}

// normalKind writes a smarthost kind as stored ("" and " SMTP" → "smtp");
// what is not a kind is kept for Smarthost.Validate to refuse by name.
func normalKind(s string) string {
	switch k := strings.ToLower(strings.TrimSpace(s)); k {
	case "", smarthost.KindSMTP:
		return smarthost.KindSMTP
	case smarthost.KindCapture:
		return k
	}
	return s
}

func (a *api) viewSmarthost(h *smarthost.Smarthost) (*SmarthostView, error) {
	users, err := a.usersOf(h.Name)
	if err != nil {
		return nil, err
	}
	include, _ := h.SPFIdentityInclude()
	return &SmarthostView{
		SmarthostSummary: a.summary(h), CAFile: h.CAFile, SPFInclude: include, SPFIPs: h.SPFIPs,
		SPFPolicy: h.SPFPolicy, Fallback: h.Fallback, Owner: h.Owner, Users: users, Created: h.Created,
	}, nil
}

func (a *api) listSmarthosts(w http.ResponseWriter, r *http.Request) error {
	hosts, err := a.Smarthosts.List()
	if err != nil {
		return err
	}
	out := make([]*SmarthostView, 0, len(hosts))
	for _, h := range hosts {
		v, err := a.viewSmarthost(h)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) showSmarthost(w http.ResponseWriter, r *http.Request) error {
	h, err := a.Smarthosts.Get(r.PathValue("name"))
	if err != nil {
		return shError(err)
	}
	v, err := a.viewSmarthost(h)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// connectionTest runs the connection test of h with password, through
// the upstream delivery would build from it: a host a sender chose
// (h.PublicOnly) is connected to on a public address only, unless the
// operator allows others.
func (a *api) connectionTest(ctx context.Context, h *smarthost.Smarthost, password string) (*delivery.ConnectionReport, error) {
	if h.Captures() {
		return CaptureTestReport(), nil
	}
	up, err := route.FromSmarthost(h, password)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if a.AllowPrivateHosts {
		up.PublicOnly = false
	}
	rep := delivery.ConnectionTest(ctx, up, a.LocalName, a.ConnectionTestTimeout)
	return &rep, nil
}

// CaptureTestReport is the connection test's answer for a smarthost of
// kind capture: it passes, and says that nothing is dialled.
func CaptureTestReport() *delivery.ConnectionReport {
	return &delivery.ConnectionReport{OK: true, Target: "capture (mail is kept in the capture store, never sent)",
		Steps: []delivery.ConnectionStep{{Name: "capture", Status: "ok",
			Reply: "nothing to connect to: messages routed here are kept in the capture store (GET /api/capture, outbound capture list)"}}}
}

// checkCapture refuses a smarthost of kind capture, with what to change:
// in a password, or on a relay that looks like production unless the
// configuration allows it (Options.RefuseCaptureSmarthosts).
func (a *api) checkCapture(h *smarthost.Smarthost, password string) error {
	if !h.Captures() {
		return nil
	}
	if password != "" {
		return badRequest("smarthost %s is of kind capture: it logs in nowhere, so it takes no password", h.Name)
	}
	if a.RefuseCaptureSmarthosts {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("smarthost %s: kind capture keeps mail instead of sending it, "+
			"and this relay looks like production ([acme], or a submission or admin listen address that is not loopback): "+
			"refused; to capture here anyway, set allow_capture_in_production = true in the configuration and restart", h.Name)}
	}
	return nil
}

// refuseFailed answers 422 with the report when a test failed and the
// request did not force the save.
func refuseFailed(w http.ResponseWriter, rep *delivery.ConnectionReport) {
	f := rep.Failed()
	msg := fmt.Sprintf("connection test failed at step %s: %s", f.Name, f.Error)
	if f.Hint != "" {
		msg += " (" + f.Hint + ")"
	}
	msg += "; not saved: fix the settings, or force the save"
	writeJSON(w, http.StatusUnprocessableEntity, SmarthostResult{Error: msg, Test: rep})
}

func (a *api) addSmarthost(w http.ResponseWriter, r *http.Request) error {
	var req SmarthostRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	h := smarthost.Smarthost{Name: req.Name, Kind: normalKind(req.Kind), CAFile: req.CAFile, SPFInclude: req.SPFInclude, SPFIPs: req.SPFIPs,
		SPFPolicy: normalPolicy(req.SPFPolicy), Fallback: req.Fallback}
	if err := req.apply(&h); err != nil {
		return err
	}
	if err := h.Validate(); err != nil {
		return badRequest("%v", err)
	}
	if err := a.checkCapture(&h, req.Password); err != nil {
		return err
	}
	if _, err := a.Smarthosts.Get(h.Name); err == nil {
		return shError(fmt.Errorf("%w: %s (use update, or delete it first)", smarthost.ErrExists, h.Name))
	}
	if h.Username != "" && req.Password == "" {
		return badRequest("smarthost %s has username %q but no password: give the password", h.Name, h.Username)
	}
	return a.testThenSave(w, r, &h, req.Password, req.Force, http.StatusCreated, func(testOK bool) error {
		if _, err := a.Smarthosts.Add(h, req.Password); err != nil {
			return err
		}
		a.Logger.Info("smarthost added", "smarthost", h.Name, "kind", h.Kind, "host", h.Host, "port", h.Port, "test_ok", testOK)
		return nil
	})
}

func (a *api) updateSmarthost(w http.ResponseWriter, r *http.Request) error {
	var req SmarthostUpdateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	h, err := a.Smarthosts.Get(name)
	if err != nil {
		return shError(err)
	}
	apply := func(h *smarthost.Smarthost) error {
		set := func(dst *string, src *string) {
			if src != nil {
				*dst = *src
			}
		}
		if req.Kind != nil && normalKind(*req.Kind) != h.Kind {
			if h.Kind = normalKind(*req.Kind); h.Captures() {
				h.MakeCapture() // what the request gives besides is refused by Validate, by name
			}
		}
		if req.Host != nil && *req.Host != h.Host {
			h.PublicOnly = false // an operator chose the host
		}
		set(&h.Host, req.Host)
		set(&h.TLS, req.TLS)
		set(&h.Username, req.Username)
		set(&h.CAFile, req.CAFile)
		set(&h.SPFInclude, req.SPFInclude)
		set(&h.Fallback, req.Fallback)
		if req.SPFPolicy != nil {
			h.SPFPolicy = normalPolicy(*req.SPFPolicy)
		}
		if req.Port != nil {
			h.Port = *req.Port
		}
		if req.SPFIPs != nil {
			h.SPFIPs = *req.SPFIPs
		}
		return nil
	}
	stored := *h
	apply(h)
	if err := h.Validate(); err != nil {
		return badRequest("%v", err)
	}
	password := ""
	switch {
	case req.Password != nil:
		password = *req.Password
	case !h.Captures(): // a capture smarthost logs in nowhere: its stored password goes
		if password, err = a.storedPasswordFor(&stored, h); err != nil {
			return err
		}
	}
	if err := a.checkCapture(h, password); err != nil {
		return err
	}
	return a.testThenSave(w, r, h, password, req.Force, http.StatusOK, func(testOK bool) error {
		if err := a.Smarthosts.Update(name, req.Password, apply); err != nil {
			return err
		}
		a.Logger.Info("smarthost updated", "smarthost", name, "kind", h.Kind, "password_changed", req.Password != nil, "test_ok", testOK)
		return nil
	})
}

// testThenSave runs the connection test of h (the smarthost as it will be
// stored) with password, and saves it only when the test passed or the
// request forces the save; a refused save answers 422 with the report.
// save is told whether the test passed, for its log line. The answer is
// the smarthost as stored, with status and the report.
func (a *api) testThenSave(w http.ResponseWriter, r *http.Request, h *smarthost.Smarthost, password string, force bool,
	status int, save func(testOK bool) error) error {
	rep, err := a.connectionTest(r.Context(), h, password)
	if err != nil {
		return err
	}
	if !rep.OK && !force {
		refuseFailed(w, rep)
		return nil
	}
	if err := save(rep.OK); err != nil {
		// Not found or exists: the smarthost, or the fallback it names.
		if errors.Is(err, smarthost.ErrExists) || errors.Is(err, smarthost.ErrNotFound) {
			return shError(err)
		}
		return badRequest("%v", err)
	}
	stored, err := a.Smarthosts.Get(h.Name)
	if err != nil {
		return err
	}
	return a.writeResult(w, status, stored, rep)
}

// writeResult answers with h, as the API shows it, and its test's report.
func (a *api) writeResult(w http.ResponseWriter, status int, h *smarthost.Smarthost, rep *delivery.ConnectionReport) error {
	v, err := a.viewSmarthost(h)
	if err != nil {
		return err
	}
	writeJSON(w, status, SmarthostResult{Smarthost: v, Test: rep, Saved: true})
	return nil
}

func (a *api) deleteSmarthost(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := a.Smarthosts.Delete(name, a.usersOf); err != nil {
		return shError(err)
	}
	a.Logger.Info("smarthost deleted", "smarthost", name)
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
	return nil
}

func (a *api) testSmarthost(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	h, err := a.Smarthosts.Get(name)
	if err != nil {
		return shError(err)
	}
	password, err := a.Smarthosts.Password(name)
	if err != nil {
		return err
	}
	rep, err := a.connectionTest(r.Context(), h, password)
	if err != nil {
		return err
	}
	return a.writeResult(w, http.StatusOK, h, rep)
}

func (a *api) setRoutes(w http.ResponseWriter, r *http.Request) error {
	var req RouteRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	switch {
	case (len(req.Users) > 0) == (req.From != ""):
		return badRequest(`give either "users" (a list of user names) or "from" (a smarthost name, or "default")`)
	case (req.Smarthost != "") == req.Default:
		return badRequest(`give either "smarthost" (the new route) or "default": true`)
	}
	to, shown := req.Smarthost, req.Smarthost
	if req.Default || to == route.DefaultName {
		to, shown = "", route.DefaultName
	} else if h, err := a.Smarthosts.Get(to); err != nil {
		return shError(err)
	} else if h.Owner != "" && (req.From != "" || len(req.Users) != 1 || req.Users[0] != h.Owner) {
		// Its credentials are its owner's: no one else's mail goes
		// through them.
		return &httpError{status: http.StatusConflict,
			msg: fmt.Sprintf("smarthost %s is the own SMTP server of user %s: only %s can be routed through it", h.Name, h.Owner, h.Owner)}
	}
	var (
		moved []string
		err   error
	)
	if req.From != "" {
		from := req.From
		if from == route.DefaultName {
			from = ""
		}
		moved, err = a.Users.MoveRoute(from, to)
	} else {
		moved, err = a.Users.SetRoute(req.Users, to)
	}
	if err != nil {
		return shError(err)
	}
	a.Logger.Info("users routed", "route", shown, "users", len(moved))
	out := RouteResult{Route: shown, Users: []UsageView{}}
	for _, name := range moved {
		u, err := a.Users.Get(name)
		if err != nil {
			return err
		}
		out.Users = append(out.Users, a.usageOf(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
