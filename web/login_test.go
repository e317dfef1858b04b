package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"outbound/auth"
)

func TestSignInAsOperatorShowsOperatorNavigation(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	page := b.get("/")
	if page.status != http.StatusOK {
		t.Fatalf("GET / after sign-in: %d", page.status)
	}
	for _, want := range []string{">Overview<", ">Users<", ">Smarthosts<", ">Queue<", ">Sign out<"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("operator's page lacks %s", want)
		}
	}
	if strings.Contains(page.body, ">Messages<") {
		t.Error("operator's navigation shows the senders' Messages")
	}
}

func TestSignInAsSenderShowsSenderNavigation(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	b := r.browser(t)
	b.signIn("alice@example.com", senderPassword)
	page := b.get("/")
	for _, want := range []string{">Overview<", ">E-mail settings<", ">Messages<", ">Sign out<", `href="/users/alice@example.com"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("sender's page lacks %s", want)
		}
	}
	for _, not := range []string{">Users<", ">Smarthosts<", ">Queue<"} {
		if strings.Contains(page.body, not) {
			t.Errorf("sender's navigation shows the operators' %s", not)
		}
	}
}

func TestSignInPageHasLabelledFields(t *testing.T) {
	r := newRig(t)
	page := r.browser(t).get("/login")
	for _, want := range []string{`<label for="login">Login</label>`, `<label for="password">Password</label>`,
		`<button type="submit" class="button-primary">Sign in</button>`, `id="login"`, `id="password"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}
}

func TestSignInWrongPasswordRefused(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	for _, c := range []struct{ login, password string }{
		{operatorName, "wrong password"},
		{"alice@example.com", "wrong password"},
		{"nobody@example.com", senderPassword},
	} {
		b := r.browser(t)
		resp := b.trySignIn(c.login, c.password)
		if resp.status != http.StatusUnauthorized || !strings.Contains(resp.body, "Wrong login or password.") {
			t.Errorf("%s with a wrong password: %d, want 401 and the message\n%s", c.login, resp.status, resp.body)
		}
		if strings.Contains(resp.body, c.password) {
			t.Errorf("%s: the password comes back in the page", c.login)
		}
		if !strings.Contains(resp.body, `role="alert"`) {
			t.Errorf("%s: the error is not in a role=alert box", c.login)
		}
		if got := b.get("/"); got.status != http.StatusSeeOther {
			t.Errorf("%s: after a failed sign-in GET / is %d, want a redirect to the sign-in page", c.login, got.status)
		}
	}
}

// A name that is an operator is checked only as an operator: a relay
// user of the same name cannot sign in with its SMTP password.
func TestSignInOperatorNameIsCheckedOnlyAsOperator(t *testing.T) {
	r := newRig(t)
	r.addSender(t, operatorName)
	b := r.browser(t)
	if resp := b.trySignIn(operatorName, senderPassword); resp.status != http.StatusUnauthorized {
		t.Errorf("the user's password for an operator's name: %d, want 401", resp.status)
	}
	b.signIn(operatorName, operatorPassword)
	if page := b.get("/"); !strings.Contains(page.body, ">Queue<") {
		t.Error("signed in, but not as the operator")
	}
}

func TestSignInReturnsToTheRequestedPageOnly(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	resp := b.get("/queue?status=failed")
	if resp.status != http.StatusSeeOther || resp.location != "/login?next=%2Fqueue%3Fstatus%3Dfailed" {
		t.Fatalf("GET /queue signed out: %d %q", resp.status, resp.location)
	}
	form := url.Values{"login": {operatorName}, "password": {operatorPassword}, "next": {"/queue?status=failed"}}
	if resp := b.submit("/login", "/login", form); resp.location != "/queue?status=failed" {
		t.Errorf("after sign-in: redirect to %q, want the requested page", resp.location)
	}
	for _, next := range []string{"https://evil.example/", "//evil.example/", `/\evil.example`, "queue"} {
		b := r.browser(t)
		form := url.Values{"login": {operatorName}, "password": {operatorPassword}, "next": {next}}
		if resp := b.submit("/login", "/login", form); resp.location != "/" {
			t.Errorf("next=%q: redirect to %q, want /", next, resp.location)
		}
	}
}

func TestSignOutEndsTheSessionOnTheServer(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	cookies := b.http.Jar.Cookies(mustURL(t, r.srv.URL))
	resp := b.submit("/", "/logout", nil)
	if resp.status != http.StatusSeeOther || resp.location != "/login?signed-out" {
		t.Fatalf("sign out: %d %q", resp.status, resp.location)
	}
	if page := b.get("/login?signed-out"); !strings.Contains(page.body, "You have signed out.") {
		t.Error("the sign-in page does not say the sign-out worked")
	}
	// The old cookie, replayed, no longer works.
	replay := r.browser(t)
	replay.http.Jar.SetCookies(mustURL(t, r.srv.URL), cookies)
	if got := replay.get("/"); got.status != http.StatusSeeOther {
		t.Errorf("the session cookie after sign-out: GET / is %d, want a redirect to sign in", got.status)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		r := newRig(t, rigOptions{tls: tlsOn})
		b := r.browser(t)
		resp := b.trySignIn(operatorName, operatorPassword)
		var set string
		for _, c := range resp.header.Values("Set-Cookie") {
			if strings.HasPrefix(c, sessionCookie+"=") {
				set = c
			}
		}
		if set == "" {
			t.Fatalf("tls=%v: no session cookie set", tlsOn)
		}
		for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(set, want) {
				t.Errorf("tls=%v: session cookie %q lacks %s", tlsOn, set, want)
			}
		}
		if strings.Contains(set, "Secure") != tlsOn {
			t.Errorf("tls=%v: session cookie %q: Secure must be set exactly over HTTPS", tlsOn, set)
		}
	}
}

func TestSessionExpiresWhenIdle(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	// Each request restarts the idle time: 20 minutes, 20 more, still in.
	r.clock.Advance(20 * time.Minute)
	if got := b.get("/"); got.status != http.StatusOK {
		t.Fatalf("after 20 idle minutes: %d, want 200", got.status)
	}
	r.clock.Advance(20 * time.Minute)
	if got := b.get("/"); got.status != http.StatusOK {
		t.Fatalf("after 20 more idle minutes: %d, want 200 (the idle time slides)", got.status)
	}
	r.clock.Advance(31 * time.Minute)
	got := b.get("/")
	if got.status != http.StatusSeeOther || got.location != "/login?expired=" {
		t.Fatalf("after 31 idle minutes: %d %q, want a redirect to sign in again", got.status, got.location)
	}
	if page := b.get(got.location); !strings.Contains(page.body, "Your session has expired") {
		t.Error("the sign-in page does not say the session expired")
	}
}

func TestSessionEndsAfterTwelveHoursEvenWhenUsed(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	for range 12 * 60 / 25 {
		r.clock.Advance(25 * time.Minute)
		if got := b.get("/"); got.status != http.StatusOK {
			t.Fatalf("at %v: %d, want 200", r.clock.Now(), got.status)
		}
	}
	r.clock.Advance(25 * time.Minute)
	if got := b.get("/"); got.status != http.StatusSeeOther {
		t.Errorf("past 12 hours: %d, want a redirect to sign in", got.status)
	}
}

func TestRemovedOperatorIsSignedOut(t *testing.T) {
	r := newRig(t)
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	if err := r.operators.Delete(operatorName); err != nil {
		t.Fatal(err)
	}
	if got := b.get("/"); got.status != http.StatusSeeOther {
		t.Errorf("after operator del: GET / is %d, want a redirect to sign in", got.status)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Sign-in failures are throttled as SMTP AUTH's are: after MaxFailures
// wrong passwords from one address, that login is refused from there for
// the lockout, the right password included, and the page says for how
// long. Another login from the same address still signs in.
func TestSignInThrottledAfterFailures(t *testing.T) {
	th := &auth.Throttle{MaxFailures: 2, Window: 5 * time.Minute, Lockout: 15 * time.Minute,
		Sleep: func(time.Duration) {}}
	r := newRig(t, rigOptions{throttle: th})
	th.Now = r.clock.Now
	r.addSender(t, "alice@example.com")
	b := r.browser(t)
	for range 2 {
		if resp := b.trySignIn(operatorName, "wrong password"); resp.status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", resp.status)
		}
	}
	resp := b.trySignIn(operatorName, operatorPassword)
	if resp.status != http.StatusTooManyRequests || !strings.Contains(resp.body, "Too many failed sign-ins from your address: try again in 15 minutes.") {
		t.Fatalf("right password after the failures: %d, want 429 saying how long\n%s", resp.status, resp.body)
	}
	r.browser(t).signIn("alice@example.com", senderPassword)
	r.clock.Advance(16 * time.Minute)
	b.signIn(operatorName, operatorPassword)
}

// Changing a sender's password, or deleting the sender, signs out the
// browsers signed in with the old one at their next request.
func TestSenderSignedOutWhenPasswordChangesOrUserGoes(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "bob@example.com")
	alice, bob := r.browser(t), r.browser(t)
	alice.signIn("alice@example.com", senderPassword)
	bob.signIn("bob@example.com", senderPassword)
	if err := r.users.SetPassword("alice@example.com", "a new password 2"); err != nil {
		t.Fatal(err)
	}
	if got := alice.get("/"); got.status != http.StatusSeeOther {
		t.Errorf("after a password change: GET / is %d, want a redirect to sign in", got.status)
	}
	alice.signIn("alice@example.com", "a new password 2")
	if got := alice.get("/"); got.status != http.StatusOK {
		t.Errorf("signed in with the new password: %d", got.status)
	}
	if err := r.users.Delete("bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := bob.get("/"); got.status != http.StatusSeeOther {
		t.Errorf("after the user is deleted: GET / is %d, want a redirect to sign in", got.status)
	}
}
