package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"outbound/internal/dnstest"
	"outbound/internal/testutil"
	"outbound/quota"
	"outbound/smarthost"
	"outbound/spf"
)

// The own SMTP server of the tests: a server on loopback (where no TLS is
// allowed) that takes one login.
const (
	upUser     = "relay-login"
	upPassword = "upstream-secret-xyz789" // masked as ****xyz789
)

func startUpstream(t *testing.T) *testutil.Upstream {
	return testutil.StartUpstream(t, testutil.UpstreamOptions{Username: upUser, Password: upPassword})
}

// emailForm is the E-mail settings form for an own SMTP server on up.
func emailForm(up *testutil.Upstream, password string) url.Values {
	return url.Values{"mode": {"own"}, "host": {up.Host}, "port": {strconv.Itoa(up.Port)}, "tls": {"none"},
		"username": {upUser}, "password": {password}}
}

// signedIn is a browser signed in as login (an operator when it is
// operatorName).
func (r *rig) signedIn(t *testing.T, login string) *browser {
	b := r.browser(t)
	if login == operatorName {
		b.signIn(operatorName, operatorPassword)
	} else {
		b.signIn(login, senderPassword)
	}
	return b
}

// wantIn fails the test for each of wants that the page lacks.
func wantIn(t *testing.T, what string, page response, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page.body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

// wantNotIn fails the test for each of nots that the page shows.
func wantNotIn(t *testing.T, what string, page response, nots ...string) {
	t.Helper()
	for _, n := range nots {
		if strings.Contains(page.body, n) {
			t.Errorf("%s shows %q", what, n)
		}
	}
}

func (r *rig) routeOf(t *testing.T, name string) string {
	t.Helper()
	u, err := r.users.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return u.Route
}

// addSmarthost stores a shared smarthost on loopback.
func (r *rig) addSmarthost(t *testing.T, name string) {
	t.Helper()
	if _, err := r.hosts.Add(smarthost.Smarthost{Name: name, Host: "127.0.0.1", Port: 2525, TLS: "none"}, ""); err != nil {
		t.Fatal(err)
	}
}

func TestUsersPageShowsRoutesAndUsageAgainstLimits(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "bob@example.com")
	r.addSmarthost(t, "sg")
	if _, err := r.quota.Hold("alice@example.com", quota.Limits{PerHour: 2, PerDay: 2}, 1); err != nil {
		t.Fatal(err)
	}
	page := r.signedIn(t, operatorName).get("/users")
	if page.status != http.StatusOK {
		t.Fatalf("/users: %d\n%s", page.status, page.body)
	}
	wantIn(t, "/users", page, `href="/users/alice@example.com"`, `href="/users/bob@example.com"`,
		"1 of 2", "bar-5", // alice: one of two this hour, a half bar
		`<label for="select-alice@example.com" class="visually-hidden">Select alice@example.com</label>`, `<label for="route">Route</label>`, `<option value="default">Default route</option>`,
		`<option value="sg">sg</option>`, ">Move selected</button>",
		`<label for="login">Login</label>`, `<label for="new-password">Password</label>`, `<label for="allow_from">Allowed From</label>`,
		">Add user</button>", `aria-current="page">Users<`, `<th scope="col">Name</th>`)
}

func TestAddUser(t *testing.T) {
	r := newRig(t)
	b := r.signedIn(t, operatorName)
	res := b.submit("/users", "/users/new", url.Values{"login": {"carol@example.com"}, "password": {"a long password 1"},
		"allow_from": {"example.com, news@example.org"}})
	if res.status != http.StatusSeeOther || res.location != "/users/carol@example.com" {
		t.Fatalf("add: %d %s\n%s", res.status, res.location, res.body)
	}
	u, err := r.users.Get("carol@example.com")
	if err != nil || strings.Join(u.AllowFrom, " ") != "example.com news@example.org" {
		t.Fatalf("stored: %+v %v", u, err)
	}
	wantIn(t, "carol's page", b.get(res.location), "User carol@example.com added.")
	// The API's refusal, verbatim, with what was entered but the password.
	res = b.submit("/users", "/users/new", url.Values{"login": {"carol@example.com"}, "password": {"another password 2"}, "allow_from": {"x.example"}})
	if res.status != http.StatusConflict {
		t.Fatalf("duplicate: %d", res.status)
	}
	wantIn(t, "refused add", res, `role="alert"`, "already exists", `value="carol@example.com"`, `value="x.example"`)
	wantNotIn(t, "refused add", res, "another password 2")
}

// Move selected changes the route of every ticked user in one transaction:
// one unknown user, and nobody moves.
func TestMoveSelectedIsAtomic(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "bob@example.com")
	r.addSmarthost(t, "sg")
	b := r.signedIn(t, operatorName)
	res := b.submit("/users", "/users/move", url.Values{"user": {"alice@example.com", "bob@example.com", "gone@example.com"}, "route": {"sg"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("move: %d", res.status)
	}
	if r.routeOf(t, "alice@example.com") != "" || r.routeOf(t, "bob@example.com") != "" {
		t.Fatal("a refused move moved some users")
	}
	wantIn(t, "after the refused move", b.get("/users"), "Nothing moved:", "gone@example.com")
	b.submit("/users", "/users/move", url.Values{"user": {"alice@example.com", "bob@example.com"}, "route": {"sg"}})
	if r.routeOf(t, "alice@example.com") != "sg" || r.routeOf(t, "bob@example.com") != "sg" {
		t.Fatal("not moved")
	}
	wantIn(t, "after the move", b.get("/users"), "2 users moved to sg.")
	b.submit("/users", "/users/move", url.Values{"user": {"alice@example.com"}, "route": {"default"}})
	if r.routeOf(t, "alice@example.com") != "" {
		t.Fatal("not moved back to the default route")
	}
}

// The user page: a failing Test connection shows the steps with the hint
// and offers Save anyway; Save refuses the failing settings (422) until
// Save anyway; the right password saves and routes the user.
func TestOwnSMTPServerTestedBeforeSaving(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	up := startUpstream(t)
	b := r.signedIn(t, operatorName)
	const page = "/users/alice@example.com"

	res := b.submit(page, page+"/email/test", emailForm(up, upPassword))
	if res.status != http.StatusOK {
		t.Fatalf("test: %d\n%s", res.status, res.body)
	}
	wantIn(t, "a passing test", res, "Connection test passed", "step-ok", "<strong>auth</strong>")
	wantNotIn(t, "a passing test", res, "Save anyway")

	res = b.submit(page, page+"/email/test", emailForm(up, "wrong-password-000"))
	wantIn(t, "a failing test", res, "Connection test failed", "step-fail", "Hint: the upstream refused the username or password",
		">Save anyway</button>", `formaction="/users/alice@example.com/email"`, "type it again")

	res = b.submit(page, page+"/email", emailForm(up, "wrong-password-000"))
	if res.status != http.StatusUnprocessableEntity {
		t.Fatalf("saving failing settings: %d", res.status)
	}
	wantIn(t, "a refused save", res, "Not saved.", ">Save anyway</button>", `value="`+up.Host+`"`)
	if r.routeOf(t, "alice@example.com") != "" {
		t.Fatal("failing settings saved without Save anyway")
	}

	form := emailForm(up, "wrong-password-000")
	form.Set("force", "1")
	res = b.submit(page, page+"/email", form)
	if res.status != http.StatusSeeOther || r.routeOf(t, "alice@example.com") == "" {
		t.Fatalf("Save anyway: %d, route %q", res.status, r.routeOf(t, "alice@example.com"))
	}
	wantIn(t, "after Save anyway", b.get(page), "Saved anyway, though the connection test failed at step auth")

	res = b.submit(page, page+"/email", emailForm(up, upPassword))
	if res.status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", res.status, res.body)
	}
	shown := b.get(page)
	wantIn(t, "after saving", shown, "E-mail settings saved: the connection test passed", `id="mode-own" name="mode" value="own" checked`,
		"Saved: <span class=\"mono\">****xyz789</span>")
	// Tested again with the password left empty: the stored one is used.
	form = emailForm(up, "")
	wantIn(t, "a test with the stored password", b.submit(page, page+"/email/test", form), "Connection test passed")

	// Default route: back, and the own server is gone.
	if res := b.submit(page, page+"/email", url.Values{"mode": {"default"}}); res.status != http.StatusSeeOther || r.routeOf(t, "alice@example.com") != "" {
		t.Fatalf("default route: %d, route %q", res.status, r.routeOf(t, "alice@example.com"))
	}
}

// htmx asks for the report alone, to put in place of the old one.
func TestTestConnectionFragmentForHtmx(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	up := startUpstream(t)
	b := r.signedIn(t, operatorName)
	form := emailForm(up, "wrong-password-000")
	form.Set("csrf", b.csrf("/users/alice@example.com"))
	req, _ := http.NewRequest("POST", r.srv.URL+"/users/alice@example.com/email/test", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	res := b.do(req)
	if res.status != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(res.body), `<div id="conntest"`) {
		t.Fatalf("fragment: %d\n%s", res.status, res.body)
	}
	wantIn(t, "the fragment", res, "Connection test failed", ">Save anyway</button>")
	// The form stays as it was, the password typed still in it.
	wantNotIn(t, "the fragment", res, "<html", "wrong-password-000", "type it again")
}

// Every page that shows an SMTP server shows its password masked and
// never whole, nor a password just typed.
func TestPasswordNeverInAnyPage(t *testing.T) {
	r := newRig(t, rigOptions{spf: fakeSPF(t)})
	r.addSender(t, "alice@example.com")
	up := startUpstream(t)
	op := r.signedIn(t, operatorName)
	if res := op.submit("/users/alice@example.com", "/users/alice@example.com/email", emailForm(up, upPassword)); res.status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", res.status, res.body)
	}
	own := r.routeOf(t, "alice@example.com")
	sender := r.signedIn(t, "alice@example.com")
	wantIn(t, "/users", op.get("/users"), `<td data-label="Route">Own SMTP server</td>`)
	for _, c := range []struct {
		b    *browser
		path string
	}{
		{op, "/users"}, {op, "/users/alice@example.com"}, {op, "/users/alice@example.com/spf"}, {op, "/smarthosts"},
		{op, "/smarthosts/" + own}, {op, "/"}, {op, "/suppressions"}, {sender, "/messages"}, {sender, "/"}, {sender, "/users/alice@example.com"}, {sender, "/users/alice@example.com/spf"},
	} {
		page := c.b.get(c.path)
		if page.status != http.StatusOK {
			t.Errorf("%s: %d", c.path, page.status)
		}
		wantNotIn(t, c.path, page, upPassword, "upstream-secret")
	}
	wantIn(t, "the smarthost's page", op.get("/smarthosts/"+own), "****xyz789")
	// Typed into a failing form: not sent back either.
	typed := "typed-secret-4242"
	for _, path := range []string{"/email", "/email/test"} {
		res := op.submit("/users/alice@example.com", "/users/alice@example.com"+path, emailForm(up, typed))
		wantNotIn(t, path+" refused", res, typed)
	}
	res := op.submit("/smarthosts", "/smarthosts/new", url.Values{"name": {"x"}, "host": {up.Host}, "port": {strconv.Itoa(up.Port)},
		"tls": {"none"}, "username": {upUser}, "password": {typed}})
	wantNotIn(t, "Add smarthost refused", res, typed)
}

// A sender reaches its own page only, under its own navigation entry;
// another user is "not found", the operators' pages and actions refused.
func TestSenderSeesAndChangesOnlyItself(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "bob@example.com")
	b := r.signedIn(t, "alice@example.com")
	own := b.get("/users/alice@example.com")
	if own.status != http.StatusOK {
		t.Fatalf("own page: %d", own.status)
	}
	wantIn(t, "alice's page", own, `aria-current="page">E-mail settings<`, "<h2 id=\"email-heading\">E-mail settings</h2>",
		"<h2 id=\"sender-heading\">Sender</h2>", "<h2 id=\"limits-heading\">Limits</h2>", "<h2 id=\"usage-heading\">Usage</h2>",
		"<h2 id=\"spf-heading\">SPF</h2>", "Only an operator can change your limits.", "Only an operator can change the addresses")
	wantNotIn(t, "alice's page", own, `id="per_hour"`, ">Reset to default<", `id="allow_from"`, "← Users")

	csrf := b.csrf("/users/alice@example.com")
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/users/bob@example.com", 404},
		{"GET", "/users/bob@example.com/spf", 404},
		{"POST", "/users/bob@example.com/email", 404},
		{"POST", "/users/bob@example.com/email/test", 404},
		{"POST", "/users/bob@example.com/sender", 404},
		{"GET", "/users", 403},
		{"POST", "/users/new", 403},
		{"POST", "/users/move", 403},
		{"POST", "/users/alice@example.com/limits", 403},
		{"POST", "/users/alice@example.com/limits/reset", 403},
		{"GET", "/smarthosts", 403},
		{"POST", "/smarthosts/new", 403},
	} {
		var res response
		form := url.Values{"csrf": {csrf}, "display_name": {"Mallory"}, "mode": {"default"}, "login": {"eve@example.com"},
			"password": {"a long password 1"}, "user": {"bob@example.com"}, "route": {"default"}, "per_hour": {"9999"}, "per_day": {"9999"}}
		if c.method == "GET" {
			res = b.get(c.path)
		} else {
			res = b.post(c.path, form)
		}
		if res.status != c.status {
			t.Errorf("%s %s as alice: %d, want %d", c.method, c.path, res.status, c.status)
		}
		wantNotIn(t, c.path, res, "bob@example.com")
	}
	if d, _ := r.users.Get("bob@example.com"); d.DisplayName != "" {
		t.Fatal("alice changed bob")
	}
	if _, err := r.users.Get("eve@example.com"); err == nil {
		t.Fatal("alice added a user")
	}
	// Her own sender settings she may change, but not what she may send as.
	res := b.submit("/users/alice@example.com", "/users/alice@example.com/sender",
		url.Values{"display_name": {"Alice"}, "reply_to": {"help@example.com"}, "allow_from": {"example.org"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("sender settings: %d\n%s", res.status, res.body)
	}
	if u, _ := r.users.Get("alice@example.com"); u.DisplayName != "Alice" || u.ReplyTo != "help@example.com" || len(u.AllowFrom) != 0 {
		t.Fatalf("alice after saving her sender settings: %+v", u)
	}
}

// A sender's own SMTP server must be on a public address unless the
// operator allows others: the API's refusal is the page's.
func TestSenderOwnServerMustBePublic(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	up := startUpstream(t)
	b := r.signedIn(t, "alice@example.com")
	const page = "/users/alice@example.com"
	form := emailForm(up, upPassword)
	form.Set("force", "1")
	res := b.submit(page, page+"/email", form)
	if res.status != http.StatusForbidden {
		t.Fatalf("loopback server: %d\n%s", res.status, res.body)
	}
	wantIn(t, "refused", res, `role="alert"`, "your own SMTP server must be on a public address, but 127.0.0.1 is a loopback address")
	wantIn(t, "refused test", b.submit(page, page+"/email/test", emailForm(up, upPassword)), "must be on a public address")
	if r.routeOf(t, "alice@example.com") != "" {
		t.Fatal("saved")
	}

	r = newRig(t, rigOptions{allowPrivateHosts: true})
	r.addSender(t, "alice@example.com")
	b = r.signedIn(t, "alice@example.com")
	if res := b.submit(page, page+"/email", emailForm(up, upPassword)); res.status != http.StatusSeeOther || r.routeOf(t, "alice@example.com") == "" {
		t.Fatalf("allowed: %d\n%s", res.status, res.body)
	}
}

func TestLimitsSavedAndResetByOperators(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	b := r.signedIn(t, operatorName)
	const page = "/users/alice@example.com"
	wantIn(t, "the page", b.get(page), `<label for="per_hour">Per hour</label>`, `<label for="per_day">Per day</label>`,
		`value="2"`, ">Reset to default</button>")
	if res := b.submit(page, page+"/limits", url.Values{"per_hour": {"10"}, "per_day": {"100"}}); res.status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", res.status, res.body)
	}
	if u, _ := r.users.Get("alice@example.com"); u.Limits == nil || u.Limits.PerHour != 10 || u.Limits.PerDay != 100 {
		t.Fatalf("limits: %+v", u.Limits)
	}
	res := b.submit(page, page+"/limits", url.Values{"per_hour": {"10"}, "per_day": {"20000"}})
	if res.status != http.StatusBadRequest {
		t.Fatalf("over the ceiling: %d", res.status)
	}
	wantIn(t, "over the ceiling", res, "exceeds the operator ceiling limits.max_per_day = 10000", `value="20000"`)
	if res := b.submit(page, page+"/limits/reset", nil); res.status != http.StatusSeeOther {
		t.Fatalf("reset: %d", res.status)
	}
	if u, _ := r.users.Get("alice@example.com"); u.Limits != nil {
		t.Fatalf("limits after reset: %+v", u.Limits)
	}
	wantIn(t, "after reset", b.get(page), "Limits reset to the route&#39;s default: 2 per hour, 2 per day.")
}

// The usage section: this hour and today against the limits, and the
// day's chart.
func TestUserPageShowsUsage(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	if _, err := r.quota.Hold("alice@example.com", quota.Limits{PerHour: 2, PerDay: 2}, 2); err != nil {
		t.Fatal(err)
	}
	page := r.signedIn(t, "alice@example.com").get("/users/alice@example.com")
	wantIn(t, "usage", page, "This hour", "Today (last 24 hours)", "0 remaining", "Next slot frees", `<svg class="chart"`, "2 in all")
}

// spfZone authorizes the rig's default route (include _spf.example.net)
// for example.com, not for example.org.
const spfZone = `$TTL 300
_spf.example.net. TXT "v=spf1 ip4:192.0.2.0/25 ~all"
example.com.      TXT "v=spf1 include:_spf.example.net -all"
example.org.      TXT "v=spf1 ip4:198.51.100.0/24 -all"
`

func fakeSPF(t *testing.T) *spf.Checker {
	dns := dnstest.Start(t, spfZone)
	res, err := spf.NewResolver([]string{dns.Addr()}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &spf.Checker{Resolver: res}
}

func TestSPFSection(t *testing.T) {
	r := newRig(t, rigOptions{spf: fakeSPF(t)})
	if _, err := r.users.Add("alice@example.com", senderPassword, []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	b := r.signedIn(t, "alice@example.com")
	page := b.get("/users/alice@example.com")
	wantIn(t, "the SPF section", page, `hx-get="/users/alice@example.com/spf" hx-trigger="load"`, `<a href="/users/alice@example.com/spf">Check SPF</a>`)
	spfPage := b.get("/users/alice@example.com/spf")
	wantIn(t, "the SPF page", spfPage, `<th scope="row" class="col-domain">example.com</th>`, "aligned", `<th scope="row" class="col-domain">example.org</th>`,
		"not aligned", "include:_spf.example.net", `example.org TXT "v=spf1 ip4:198.51.100.0/24 -all"`)
	req, _ := http.NewRequest("GET", r.srv.URL+"/users/alice@example.com/spf", nil)
	req.Header.Set("HX-Request", "true")
	if frag := b.do(req); !strings.HasPrefix(strings.TrimSpace(frag.body), `<div id="spf-result">`) {
		t.Fatalf("fragment:\n%s", frag.body)
	}
	// Without a checker the section says so.
	r = newRig(t)
	r.addSender(t, "alice@example.com")
	wantIn(t, "no checker", r.signedIn(t, "alice@example.com").get("/users/alice@example.com/spf"), "SPF checks are not configured")
}

// The Sender section's checkbox turns delivery notifications by e-mail
// off and on again, saved with the other sender settings; a sender may
// change its own.
func TestDSNCheckboxSavesOnAndOff(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	for _, login := range []string{operatorName, "alice@example.com"} {
		b := r.signedIn(t, login)
		page := b.get("/users/alice@example.com")
		wantIn(t, login+": the Sender section", page, `<label class="check" for="dsn">`,
			`<input id="dsn" name="dsn" type="checkbox" value="on" checked`, "Send delivery notifications by e-mail")
		// Unticked: the browser sends no "dsn".
		res := b.submit("/users/alice@example.com", "/users/alice@example.com/sender", url.Values{"display_name": {"Alice"}})
		if res.status != http.StatusSeeOther {
			t.Fatalf("%s: saving with the box unticked: %d\n%s", login, res.status, res.body)
		}
		if u, _ := r.users.Get("alice@example.com"); !u.DSNOff || u.DisplayName != "Alice" {
			t.Fatalf("%s: after unticking: DSNOff %v, display name %q", login, u.DSNOff, u.DisplayName)
		}
		wantNotIn(t, login+": unticked", b.get("/users/alice@example.com"), `type="checkbox" value="on" checked`)
		res = b.submit("/users/alice@example.com", "/users/alice@example.com/sender", url.Values{"display_name": {"Alice"}, "dsn": {"on"}})
		if res.status != http.StatusSeeOther {
			t.Fatalf("%s: saving with the box ticked: %d\n%s", login, res.status, res.body)
		}
		if u, _ := r.users.Get("alice@example.com"); u.DSNOff {
			t.Fatalf("%s: ticked, yet DSNs stay off", login)
		}
	}
}
