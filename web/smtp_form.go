package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"outbound/admin"
	"outbound/delivery"
	"outbound/provider"
	"outbound/smarthost"
)

// SMTPForm is the SMTP server fields of a form, as entered: a user's own
// SMTP server (E-mail settings) and a smarthost (Add smarthost, a
// smarthost's page). The password is read from the form but never put
// back into a page: Saved shows the stored one masked instead.
type SMTPForm struct {
	Preset, Host, Port, TLS, Username string
	password                          string
	// Saved is the stored password masked ("****xyz789"), "" when none.
	Saved string
	// Name, Fallback and Kind are a smarthost's (Add smarthost only has
	// Name as a field). Kind is "smtp" (or "" on a form without it) or
	// "capture", whose form sends none of the SMTP fields.
	Name, Fallback, Kind string
	// PasswordGiven says a password was typed, to say it must be typed
	// again: it is not sent back to the browser.
	PasswordGiven bool
}

// smtpFormFrom reads the SMTP fields of a posted form.
func smtpFormFrom(r *http.Request) SMTPForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	f := SMTPForm{Preset: v("preset"), Host: v("host"), Port: v("port"), TLS: v("tls"), Username: v("username"),
		password: r.PostFormValue("password"), Name: v("name"), Fallback: v("fallback"), Kind: v("kind")}
	f.PasswordGiven = f.password != ""
	return f
}

// port is the port as a number, 0 when left empty (the preset's). The
// error is shown as it is.
func (f SMTPForm) port() (int, error) {
	if f.Port == "" {
		return 0, nil
	}
	p, err := strconv.Atoi(f.Port)
	if err != nil {
		return 0, fmt.Errorf("SMTP port must be a number, like 587 or 465, not %q", f.Port)
	}
	return p, nil
}

// smtpFormOf is the form showing stored settings.
func smtpFormOf(preset, host string, port int, tls, username, masked string) SMTPForm {
	f := SMTPForm{Preset: preset, Host: host, TLS: tls, Username: username, Saved: masked}
	if port != 0 {
		f.Port = strconv.Itoa(port)
	}
	return f
}

// settings are the form's connection settings, as every request below
// takes them.
func (f SMTPForm) settings() (admin.ConnectionSettings, error) {
	port, err := f.port()
	return admin.ConnectionSettings{Preset: f.Preset, Host: f.Host, Port: port, TLS: f.TLS,
		Username: f.Username, Password: f.password}, err
}

// ownRequest is the form as PUT /api/users/{name}/smarthost takes it.
func (f SMTPForm) ownRequest(force bool) (admin.OwnSmarthostRequest, error) {
	c, err := f.settings()
	return admin.OwnSmarthostRequest{ConnectionSettings: c, Force: force}, err
}

// testRequest is the form as POST /api/connection-test takes it.
func (f SMTPForm) testRequest() (admin.ConnectionTestRequest, error) {
	c, err := f.settings()
	return admin.ConnectionTestRequest{ConnectionSettings: c}, err
}

// captures says the form is a smarthost of kind capture. Its SMTP fields
// are only hidden (the page works without script), so they still come
// with the form: they are left out of its requests.
func (f SMTPForm) captures() bool { return f.Kind == smarthost.KindCapture }

// addRequest is the form as POST /api/smarthosts takes it.
func (f SMTPForm) addRequest(force bool) (admin.SmarthostRequest, error) {
	if f.captures() {
		return admin.SmarthostRequest{Name: f.Name, Kind: f.Kind, Force: force}, nil
	}
	c, err := f.settings()
	return admin.SmarthostRequest{Name: f.Name, ConnectionSettings: c, Fallback: f.Fallback, Force: force}, err
}

// updateRequest is the form as PUT /api/smarthosts/{name} takes it: every
// field as given, the password only when typed (empty keeps it).
func (f SMTPForm) updateRequest(force bool) (admin.SmarthostUpdateRequest, error) {
	if f.captures() {
		return admin.SmarthostUpdateRequest{Kind: &f.Kind, Force: force}, nil
	}
	port, err := f.port()
	req := admin.SmarthostUpdateRequest{Host: &f.Host, Port: &port, TLS: &f.TLS, Username: &f.Username,
		Fallback: &f.Fallback, Force: force}
	if f.password != "" {
		req.Password = &f.password
	}
	if f.Kind != "" {
		req.Kind = &f.Kind
	}
	return req, err
}

// SMTPFields is what the smtp-fields partial draws: the form, the choices
// of its selects, and the result of its last connection test.
type SMTPFields struct {
	Form SMTPForm
	// Presets are the Provider choices; TLSModes the Secure connection ones.
	Presets  []provider.Preset
	TLSModes []Choice
	// Fallbacks are the smarthosts a smarthost may fall back to; nil
	// hides the field (a user's own SMTP server has none), empty shows
	// it with None alone (see FallbackField).
	Fallbacks []string
	// Kinds are the Kind choices of a shared smarthost (smarthostKinds);
	// nil hides the field (a user's own SMTP server is always SMTP).
	Kinds []Choice
	// AddName shows the Name field (Add smarthost); NoPreset hides the
	// Provider (a saved smarthost's preset does not change).
	AddName, NoPreset bool
	Test              *TestResult
}

// FallbackField says the form has the Fallback field: a shared
// smarthost's form always has it, even while no other smarthost exists to
// fall back to, so that it is there to see (and its hint says why it
// offers None alone).
func (f SMTPFields) FallbackField() bool { return f.Fallbacks != nil }

// Choice is one option of a select.
type Choice struct{ Value, Label string }

// tlsModes are the Secure connection choices. "none" is refused by the
// API for anything but this machine (a test server).
var tlsModes = []Choice{
	{"", "As the provider recommends"},
	{"starttls", "STARTTLS (usually port 587)"},
	{"implicit", "Implicit TLS (usually port 465)"},
	{tlsNone, "None (only a server on this machine)"},
}

// tlsNone is the Secure connection mode without TLS, for a server on this
// machine only.
const tlsNone = "none"

// smarthostKinds are the Kind choices: with Capture, the page's style
// hides the SMTP fields (no script needed).
var smarthostKinds = []Choice{
	{smarthost.KindSMTP, "SMTP"},
	{smarthost.KindCapture, "Capture"},
}

func smtpFields(f SMTPForm) SMTPFields {
	return SMTPFields{Form: f, Presets: provider.All(), TLSModes: tlsModes}
}

// ownSMTPFields are the fields of a user's own SMTP server on its page.
// A sender is not offered Secure connection None: it needs a server on
// this machine, which the API refuses a sender unless the operator allows
// private hosts (allowPrivate, web.allow_private_hosts). An operator
// keeps it, and so does a form whose value it already is, so that the
// select shows what is stored.
func ownSMTPFields(f SMTPForm, operator, allowPrivate bool) SMTPFields {
	fields := smtpFields(f)
	if operator || allowPrivate || f.TLS == tlsNone {
		return fields
	}
	fields.TLSModes = nil
	for _, c := range tlsModes {
		if c.Value != tlsNone {
			fields.TLSModes = append(fields.TLSModes, c)
		}
	}
	return fields
}

// TestResult is a connection test's report as a page shows it, and what
// may follow it.
type TestResult struct {
	Report *delivery.ConnectionReport
	// Error is a refusal before any test ran (the API's message).
	Error string
	// SaveAnyway offers to save the failing settings (force), posting to
	// SaveURL.
	SaveAnyway bool
	SaveURL    string
	// RetypePassword says the password typed is needed again to save.
	RetypePassword bool
	// NotSaved says the report comes from a save it refused.
	NotSaved bool
}

// StepClass is the class of a step's line: step-ok, step-fail or
// step-skipped.
func (TestResult) StepClass(status string) string {
	switch status {
	case "ok":
		return "step-ok"
	case "failed":
		return "step-fail"
	}
	return "step-skipped"
}

// saveResult is the TestResult of a save the API refused: a failed test
// (422, with its report: "Save anyway" is offered) or another refusal.
func saveResult(res *admin.SmarthostResult, err error, f SMTPForm, saveURL string) *TestResult {
	t := &TestResult{Error: err.Error(), SaveURL: saveURL}
	if apiStatus(err) == http.StatusUnprocessableEntity && res != nil && res.Test != nil {
		t.Report, t.SaveAnyway, t.RetypePassword, t.NotSaved = res.Test, true, f.PasswordGiven, true
	}
	return t
}

// testResult is the TestResult of a connection test run from a form.
func testResult(rep *delivery.ConnectionReport, err error, f SMTPForm, saveURL string) *TestResult {
	if err != nil {
		return &TestResult{Error: err.Error()}
	}
	return &TestResult{Report: rep, SaveAnyway: !rep.OK, SaveURL: saveURL, RetypePassword: !rep.OK && f.PasswordGiven}
}

// htmx reports whether the request came from htmx, which wants a fragment.
func htmx(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }
