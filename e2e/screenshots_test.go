package e2e

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/admin"
	"outbound/internal/dnstest"
	"outbound/internal/testutil"
)

// screenshotDir is where TestBrowserMainPages writes its PNGs: `make
// screenshots` passes -screenshots docs/screenshots (an absolute path: the
// test runs in e2e/). Without it, no file is written.
var screenshotDir = flag.String("screenshots", "", "write PNGs of the web interface's main pages to this directory")

// Widths the main pages must fit without scrolling sideways, and the
// screenshots' sizes.
var screenSizes = []struct {
	name          string
	width, height int
	phone         bool
}{
	{"desktop", 1280, 800, false},
	{"phone", 390, 844, true},
}

// TestBrowserMainPages opens every main page of a relay seeded with demo
// data (users on the default route, on a smarthost and on their own SMTP
// server; messages delivered, queued and failed) as an operator and as a
// sender, at desktop and at phone width: none scrolls sideways or breaks
// the Content-Security-Policy. With -screenshots DIR (make screenshots) it
// writes each as DIR/PAGE-desktop.png and DIR/PAGE-phone.png.
func TestBrowserMainPages(t *testing.T) {
	b := startBrowser(t)
	d := seedDemo(t)

	// shoot opens the page at each size; ready, if not nil, waits for
	// what the page loads after it is shown.
	shoot := func(p *tab, name, path string, ready func()) {
		t.Helper()
		for _, size := range screenSizes {
			p.resize(size.width, size.height, size.phone)
			if status := p.open(path); status != 200 {
				p.fatalf("%s: status %d", path, status)
			}
			if ready != nil {
				ready()
			}
			p.checkFits(size.width)
			if *screenshotDir != "" {
				p.screenshot(filepath.Join(*screenshotDir, name+"-"+size.name+".png"))
			}
		}
	}
	if *screenshotDir != "" {
		if err := os.MkdirAll(*screenshotDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	p := b.newTab(d.r.adminURL())
	shoot(p, "login", "/login", nil)
	p.resize(1280, 800, false)
	p.signIn(d.operator, d.operatorPass)
	shoot(p, "overview", "/", nil)
	shoot(p, "users", "/users", nil)
	// The SPF section is filled in by htmx once the page is shown.
	shoot(p, "user", "/users/"+d.ownUser, func() { p.within("SPF").waitText("not aligned") })
	shoot(p, "smarthosts", "/smarthosts", nil)
	shoot(p, "queue", "/queue", nil)
	shoot(p, "message", "/queue/"+d.failedID, nil)
	// The refused recipient is suppressed for its sender.
	shoot(p, "suppressions", "/suppressions", nil)
	p.checkConsole()

	s := b.newTab(d.r.adminURL())
	s.signIn(d.sender, d.senderPass)
	shoot(s, "sender-overview", "/", nil)
	shoot(s, "sender-messages", "/messages", nil)
	s.checkConsole()
}

// demoZone is the demo's DNS: SPF records for the users' domains, one of
// which does not authorize the server its mail leaves through.
const demoZone = `$TTL 300
example.com.                 TXT "v=spf1 include:mailgun.org -all"
mailgun.org.                 TXT "v=spf1 ip4:127.0.0.0/8 -all"
example.org.                 TXT "v=spf1 include:_spf.mail.example.org -all"
_spf.mail.example.org.       TXT "v=spf1 ip4:127.0.0.0/8 -all"
status.example.net.          TXT "v=spf1 include:_spf.other-provider.example -all"
_spf.other-provider.example. TXT "v=spf1 ip4:198.51.100.0/24 -all"
`

// demo is a relay with demo data for the screenshots.
type demo struct {
	r                      *relay
	operator, operatorPass string
	sender, senderPass     string // a sender with mail of every fate
	ownUser                string // a user on its own SMTP server
	failedID               string // a message refused upstream
}

// seedDemo starts a relay and gives it users, a smarthost and messages that
// were delivered, wait for a retry, and failed.
func seedDemo(t *testing.T) *demo {
	t.Helper()
	// The default route's upstream refuses one mailbox for good and has
	// no room for another for now.
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Rcpt: func(to string) error {
			switch {
			case strings.HasPrefix(to, "old-customer@"):
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown: mailbox old-customer does not exist"}
			case strings.HasPrefix(to, "full@"):
				return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full, try again later"}
			}
			return nil
		},
	})
	dns := dnstest.Start(t, demoZone)
	r := newRelay(t, def.Addr())
	r.cfg.set("dns", "servers", `["`+dns.Addr()+`"]`)
	// One attempt to show, not one a second.
	r.cfg.set("retry", "schedule", `["30m"]`)
	r.cfg.set("limits", "default_route_per_hour", "100")
	r.cfg.set("limits", "default_route_per_day", "1000")
	mailgun := smarthostUpstream(r, "postmaster@mg.example.com", "mailgun-demo-key-4f2a")
	own := smarthostUpstream(r, "alerts", "own-server-secret-9b3c")
	r.start()

	d := &demo{
		r: r, operator: "admin", operatorPass: "demo operator password",
		sender: "billing@example.com", senderPass: "demo billing password",
		ownUser: "alerts@example.org",
	}
	r.addOperator(d.operator, d.operatorPass)
	if res := r.addSmarthost("mailgun-eu", mailgun, "postmaster@mg.example.com", "mailgun-demo-key-4f2a",
		"--spf-include", "mailgun.org"); res.Code != 0 {
		t.Fatalf("smarthost add: %s", res)
	}
	users := []struct {
		name, pass string
		from       []string
	}{
		{d.sender, d.senderPass, []string{"example.com"}},
		{"newsletter@example.com", "demo newsletter password", []string{"example.com"}},
		{d.ownUser, "demo alerts password", []string{"example.org", "status.example.net"}},
		{"crm@example.net", "demo crm password", []string{"example.net"}},
	}
	for _, u := range users {
		r.addUser(u.name, u.pass, u.from...)
	}
	if res := r.cli("", "user", "route", "newsletter@example.com", "crm@example.net", "--smarthost", "mailgun-eu"); res.Code != 0 {
		t.Fatalf("user route: %s", res)
	}
	if res := r.cli("", "user", "set", d.sender, "--display-name", "Example Billing", "--reply-to", "accounts@example.com"); res.Code != 0 {
		t.Fatalf("user set: %s", res)
	}
	token, err := os.ReadFile(filepath.Join(r.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	api := admin.NewClient(r.adminURL(), strings.TrimSpace(string(token)), nil)
	if _, err := api.SetOwnSmarthost(d.ownUser, admin.OwnSmarthostRequest{
		ConnectionSettings: admin.ConnectionSettings{Host: own.Host, Port: own.Port, TLS: "starttls",
			Username: "alerts", Password: "own-server-secret-9b3c", CAFile: r.CAFile},
		SPFInclude: "_spf.mail.example.org",
	}); err != nil {
		t.Fatalf("setting %s's own SMTP server: %v", d.ownUser, err)
	}

	send := func(user, pass, from, to, subject string) string {
		t.Helper()
		c, err := r.login(false, user, pass)
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		defer c.Quit()
		id, err := sendMessage(c, from, []string{to}, message(from, to, subject, "Demo message."))
		if err != nil {
			t.Fatalf("%s sending %q: %v", user, subject, err)
		}
		return id
	}
	for i, subject := range []string{"Invoice 2024-0141", "Invoice 2024-0142", "Payment received"} {
		send(d.sender, d.senderPass, d.sender, []string{"jane@example.net", "omar@example.net", "li@example.net"}[i], subject)
	}
	d.failedID = send(d.sender, d.senderPass, d.sender, "old-customer@example.net", "Invoice 2024-0139")
	send(d.sender, d.senderPass, d.sender, "full@example.net", "Reminder: invoice 2024-0120")
	for _, to := range []string{"ana@example.net", "ben@example.net", "chloe@example.net", "dev@example.net"} {
		send("newsletter@example.com", "demo newsletter password", "newsletter@example.com", to, "Our spring collection")
	}
	send("crm@example.net", "demo crm password", "crm@example.net", "lead@example.com", "Thanks for your interest")
	send(d.ownUser, "demo alerts password", d.ownUser, "oncall@example.com", "Disk usage above 90%")

	// Wait until the relay has recorded every message's fate (the
	// screenshots show its records): all delivered, the notification
	// about the refused one too, but for the refused and the postponed.
	waitUntil(t, 30*time.Second, "every message's fate recorded", func() bool {
		res := r.cli("", "queue", "list", "--json")
		var msgs []struct {
			Recipients []struct {
				Addr     string `json:"addr"`
				Status   string `json:"status"`
				Attempts int    `json:"attempts"`
			} `json:"recipients"`
		}
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &msgs) != nil || len(msgs) != 12 {
			return false
		}
		for _, m := range msgs {
			for _, rc := range m.Recipients {
				want := "delivered"
				switch {
				case strings.HasPrefix(rc.Addr, "old-customer@"):
					want = "failed"
				case strings.HasPrefix(rc.Addr, "full@"):
					want = "queued"
				}
				if rc.Status != want || rc.Attempts == 0 {
					return false
				}
			}
		}
		return true
	})
	return d
}
