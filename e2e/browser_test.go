package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// addOperator runs `operator add NAME` with the password on stdin.
func (r *relay) addOperator(name, password string) {
	r.t.Helper()
	if res := r.cli(password+"\n", "operator", "add", name); res.Code != 0 {
		r.t.Fatalf("operator add %s: %s", name, res)
	}
}

// adminURL is the web interface's address (plain HTTP: the admin
// listener is on loopback).
func (r *relay) adminURL() string { return "http://" + r.AdminAddr }

// signIn fills the sign-in form and expects to land on the Overview.
func (p *tab) signIn(login, password string) {
	p.t.Helper()
	p.open("/login")
	p.fill("Login", login)
	p.fill("Password", password)
	if status := p.press("Sign in"); status != 200 || p.count("heading", "Overview") != 1 {
		p.fatalf("signing in as %s: status %d, not on the Overview", login, status)
	}
}

// TestBrowserOperatorAndSender is issue 14's scenario in a real browser
// against the built binary. An operator (made with `operator add`) signs
// in, adds a user, gives it its own SMTP server (a test upstream), tests
// the connection and sees the steps, saves; the user's message leaves
// through that server and the operator follows it on Queue to its page
// (envelope, recipients, timeline). The sender then signs in with its SMTP
// login and sees its own usage and messages only: another user's message
// is not listed and its page is a 404, and its own SMTP server may not be
// on a loopback address, nor on a name that resolves to one. No page breaks the Content-Security-Policy, the
// upstream password never reaches the browser, and the pages fit a
// phone's width.
func TestBrowserOperatorAndSender(t *testing.T) {
	b := startBrowser(t)
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	// The user's own SMTP server presents a certificate from the test CA;
	// the relay trusts that CA as it would a public one (the form has no
	// CA file: senders' providers have public certificates).
	t.Setenv("SSL_CERT_FILE", r.CAFile)
	const upUser, upPass = "smtp-user", "upstream-secret-xyz789"
	own := smarthostUpstream(r, upUser, upPass)
	r.start()
	const opName, opPass = "ops", "operator password 1"
	r.addOperator(opName, opPass)
	const other, otherPass = "other@example.org", "other password 2"
	r.addUser(other, otherPass)
	const sender, senderPass = "shop@example.com", "sender password 3"

	p := b.newTab(r.adminURL())

	// Signed out, every page leads to the sign-in form.
	p.open("/users")
	if p.count("button", "Sign in") != 1 {
		p.fatalf("a signed-out visit to /users does not show the sign-in form")
	}
	p.signIn(opName, opPass)
	for _, link := range []string{"Overview", "Users", "Smarthosts", "Queue"} {
		if p.count("link", link) != 1 {
			p.fatalf("an operator's navigation has no link %s", link)
		}
	}
	if p.count("link", "Messages") != 0 || p.count("link", "E-mail settings") != 0 {
		p.fatalf("an operator's navigation has a sender's links")
	}

	// Users → Add user.
	p.follow("Users")
	add := p.within("Add a user")
	add.fill("Login", sender)
	add.fill("Password", senderPass)
	add.fill("Allowed From", "example.com")
	if status := add.press("Add user"); status != 200 {
		p.fatalf("adding a user: status %d", status)
	}
	p.open("/users")
	if p.count("link", sender) != 1 {
		p.fatalf("the new user is not listed on Users")
	}

	// Its page → E-mail settings → Own SMTP server on the test upstream.
	p.follow(sender)
	mail := p.within("E-mail settings")
	mail.check("radio", "Own SMTP server")
	mail.fill("SMTP server", own.Host)
	mail.fill("SMTP port", strconv.Itoa(own.Port))
	mail.fill("Username", upUser)
	mail.fill("Password", upPass)
	mail.choose("Secure connection", "STARTTLS (usually port 587)")
	// htmx shows the test's steps in place, as the CLI prints them: a
	// failing step with its hint, and Save anyway...
	mail.fill("Password", "wrong-password-000")
	mail.click("Test connection")
	mail.waitText("Connection test failed", "auth", "Hint:")
	if mail.count("button", "Save anyway") != 1 {
		p.fatalf("a failed connection test offers no Save anyway")
	}
	// ...then every step passing.
	mail.fill("Password", upPass)
	mail.click("Test connection")
	mail.waitText("Connection test passed", "connect", "starttls", "auth")
	if strings.Contains(p.html(), upPass) {
		t.Errorf("the page after Test connection contains the upstream password")
	}
	if status := mail.press("Save"); status != 200 {
		p.fatalf("saving the own SMTP server: status %d", status)
	}
	p.within("E-mail settings").waitText("****xyz789")
	if strings.Contains(p.html(), upPass) {
		t.Errorf("the user page contains the upstream password")
	}

	// Mail from both users: the sender's through its own server.
	send := func(user, password, from, subject string) string {
		t.Helper()
		c, err := r.login(false, user, password)
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		defer c.Quit()
		id, err := sendMessage(c, from, []string{"customer@example.net"}, message(from, "customer@example.net", subject, "hello"))
		if err != nil {
			t.Fatalf("%s sending: %v", user, err)
		}
		return id
	}
	ownID := send(sender, senderPass, sender, "Your order")
	otherID := send(other, otherPass, other, "Other business")
	if got := own.Wait(t, 1, 20*time.Second); got[0].User != upUser || got[0].From != sender {
		t.Fatalf("the own SMTP server got %s as %s", got[0].From, got[0].User)
	}
	def.Wait(t, 1, 20*time.Second)
	// The pages show the relay's records: wait until both say delivered.
	waitUntil(t, 20*time.Second, "both messages recorded as delivered", func() bool {
		res := r.cli("", "queue", "list", "--status", "delivered")
		return strings.Contains(res.Stdout, ownID) && strings.Contains(res.Stdout, otherID)
	})

	// The Overview counts them; Queue lists both, filtered by user one.
	p.follow("Overview")
	p.within("Last 24 hours").waitText("Messages accepted 2", "Recipients delivered 2")
	p.follow("Queue")
	p.waitText(ownID, otherID)
	p.fill("User", sender)
	p.press("Filter")
	p.waitText(ownID)
	if strings.Contains(p.text(), otherID) {
		p.fatalf("Queue filtered by user %s lists %s's message", sender, other)
	}
	// The message's page: envelope, recipients, timeline of attempts.
	p.follow(ownID)
	for _, section := range []string{"Envelope", "Recipients", "Attempts"} {
		if p.count("heading", section) != 1 {
			p.fatalf("the message's page has no section %s", section)
		}
	}
	p.within("Envelope").waitText(sender, "Own SMTP server of "+sender)
	p.within("Recipients").waitText("customer@example.net delivered", "250 2.0.0")
	p.within("Attempts").waitText("Own SMTP server of " + sender)

	// Phone width: the operator's main pages fit.
	p.resize(390, 844, true)
	for _, page := range []string{"/", "/users", "/users/" + sender, "/smarthosts", "/queue", "/queue/" + ownID} {
		p.open(page)
		p.checkFits(390)
	}
	p.resize(1280, 800, false)
	p.checkConsole()

	p.press("Sign out")
	p.open("/")
	if p.count("button", "Sign in") != 1 {
		p.fatalf("after Sign out, the Overview does not lead to the sign-in form")
	}

	// The sender: its own usage and messages, nobody else's.
	p.signIn(sender, senderPass)
	for _, link := range []string{"Overview", "E-mail settings", "Messages"} {
		if p.count("link", link) != 1 {
			p.fatalf("a sender's navigation has no link %s", link)
		}
	}
	if p.count("link", "Users") != 0 || p.count("link", "Queue") != 0 || p.count("link", "Smarthosts") != 0 {
		p.fatalf("a sender's navigation has an operator's links")
	}
	p.waitText("Your usage", "This hour", "1 of 50")
	p.follow("Messages")
	p.waitText(ownID)
	if strings.Contains(p.text(), otherID) || strings.Contains(p.text(), other) {
		p.fatalf("a sender's Messages lists another user's message")
	}
	for _, page := range []string{"/queue/" + otherID, "/users/" + other} {
		if status := p.open(page); status != 404 {
			p.fatalf("a sender opening %s: status %d, want 404", page, status)
		}
	}
	p.open("/queue/" + ownID)
	p.waitText("customer@example.net", "delivered")

	// A sender's own SMTP server may not be on a loopback address, nor
	// have a name that resolves to one: the API's refusal, verbatim.
	p.follow("E-mail settings")
	mail = p.within("E-mail settings")
	mail.fill("Password", upPass)
	mail.click("Test connection")
	mail.waitText("127.0.0.1 is a loopback address")
	mail.fill("SMTP server", "localhost")
	mail.fill("Password", upPass)
	mail.press("Save")
	mail = p.within("E-mail settings")
	mail.waitText("localhost resolves to", "a loopback address")

	p.resize(390, 844, true)
	for _, page := range []string{"/", "/users/" + sender, "/messages", "/queue/" + ownID} {
		p.open(page)
		p.checkFits(390)
	}
	p.checkConsole()
}
