package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/internal/dnstest"
	"outbound/internal/testutil"
)

func wantReply(t *testing.T, err error, code int, enhanced smtp.EnhancedCode, text string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enhanced || !strings.Contains(se.Message, text) {
		t.Fatalf("got %v, want %d %v containing %q", err, code, enhanced, text)
	}
}

// A user on the default route keeps its strict default of 2 per hour: the
// third recipient gets a temporary error that names the limit, and usage
// shows it.
func TestUserAtLimitGets450(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.cfg.set("limits", "default_route_per_hour", "2")
	r.cfg.set("limits", "default_route_per_day", "100")
	r.start()
	r.addUser("app@example.com", "app password 1")
	c, err := r.login(false, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := sendMessage(c, "app@example.com", []string{"bob@example.net"}, message("app@example.com", "bob@example.net", "n", "x")); err != nil {
			t.Fatalf("message %d within the limit: %v", i+1, err)
		}
	}
	_, err = sendMessage(c, "app@example.com", []string{"bob@example.net"}, message("app@example.com", "bob@example.net", "n", "x"))
	wantReply(t, err, 450, smtp.EnhancedCode{4, 7, 1}, "hourly limit of 2 reached for app@example.com; next slot in")

	res := r.cli("", "usage", "app@example.com", "--json")
	var u struct {
		SentLastHour  int `json:"sent_last_hour"`
		RemainingHour int `json:"remaining_hour"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &u) != nil || u.SentLastHour != 2 || u.RemainingHour != 0 {
		t.Fatalf("usage: %s", res)
	}
	// Raising the user's limit lets it send again; above the ceiling is refused.
	if res := r.cli("", "limits", "set", "app@example.com", "--per-day", "20000"); res.Code == 0 || !strings.Contains(res.Stderr, "limits.max_per_day = 10000") {
		t.Fatalf("limit above the ceiling: %s", res)
	}
	res = r.cli("", "limits", "set", "app@example.com", "--per-hour", "10", "--per-day", "10", "--json")
	var set struct {
		PerHour int `json:"per_hour"`
		PerDay  int `json:"per_day"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &set) != nil || set.PerHour != 10 || set.PerDay != 10 {
		t.Fatalf("limits set --json: %s", res)
	}
	c.Reset()
	if _, err := sendMessage(c, "app@example.com", []string{"bob@example.net"}, message("app@example.com", "bob@example.net", "n", "x")); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
}

const spfZone = `$ORIGIN test.
$TTL 300
_spf.upstream    TXT "v=spf1 ip4:192.0.2.0/25 ~all"
aligned          TXT "v=spf1 include:_spf.upstream.test -all"
unaligned        TXT "v=spf1 include:other.test -all"
other            TXT "v=spf1 ip4:198.51.100.0/24 -all"
`

// With spf_policy = "enforce", a sender whose domain does not include the
// upstream is refused with the exact fix; `spf check` says the same.
func TestSPFEnforceRefusesSenderWithoutInclude(t *testing.T) {
	dns := dnstest.Start(t, spfZone)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.cfg.set("dns", "servers", `["`+dns.Addr()+`"]`)
	r.cfg.set("default_route", "spf_include", q("_spf.upstream.test"))
	r.cfg.set("default_route", "spf_policy", q("enforce"))
	r.start()
	r.addUser("app@example.com", "app password 1", "aligned.test", "unaligned.test")
	c, err := r.login(true, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sendMessage(c, "news@unaligned.test", []string{"bob@example.net"}, message("news@unaligned.test", "bob@example.net", "s", "x"))
	wantReply(t, err, 550, smtp.EnhancedCode{5, 7, 23}, "add include:_spf.upstream.test to its TXT record")
	c.Reset()
	if _, err := sendMessage(c, "news@aligned.test", []string{"bob@example.net"}, message("news@aligned.test", "bob@example.net", "aligned", "x")); err != nil {
		t.Fatalf("aligned sender refused: %v", err)
	}
	up.Wait(t, 1, 10*time.Second)

	// The user's own policy overrides the route's: "off" lets the unaligned
	// sender through (on the same connection: each MAIL sees the user as it
	// is now), "route" puts it back under the route's "enforce".
	if res := r.cli("", "user", "set", "app@example.com", "--spf-policy", "off"); res.Code != 0 || !strings.Contains(res.Stdout, "SPF policy:      off (own)") {
		t.Fatalf("user set --spf-policy off: %s", res)
	}
	c.Reset()
	if _, err := sendMessage(c, "news@unaligned.test", []string{"bob@example.net"}, message("news@unaligned.test", "bob@example.net", "own policy", "x")); err != nil {
		t.Fatalf("with the user's own policy off: %v", err)
	}
	up.Wait(t, 2, 10*time.Second)
	if res := r.cli("", "user", "set", "app@example.com", "--spf-policy", "route"); res.Code != 0 || !strings.Contains(res.Stdout, "SPF policy:      enforce (the route's)") {
		t.Fatalf("user set --spf-policy route: %s", res)
	}
	c.Reset()
	_, err = sendMessage(c, "news@unaligned.test", []string{"bob@example.net"}, message("news@unaligned.test", "bob@example.net", "s", "x"))
	wantReply(t, err, 550, smtp.EnhancedCode{5, 7, 23}, "add include:_spf.upstream.test")

	if res := r.cli("", "spf", "check", "unaligned.test", "--route", "default"); res.Code != 1 || !strings.Contains(res.Stdout, "verdict:  fail") || !strings.Contains(res.Stdout, "add include:_spf.upstream.test") {
		t.Fatalf("spf check of an unaligned domain: %s", res)
	}
	if res := r.cli("", "spf", "check", "aligned.test", "--include", "_spf.upstream.test"); res.Code != 0 || !strings.Contains(res.Stdout, "verdict:  pass") {
		t.Fatalf("spf check of an aligned domain: %s", res)
	}
	// Scripts get the same verdict and fix as JSON, and the same exit status.
	res := r.cli("", "spf", "check", "unaligned.test", "--route", "default", "--json")
	var check struct {
		Domain, Verdict, Fix string
		Records              []struct{ Domain, Text string }
		TestedIPs            []string `json:"tested_ips"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &check); err != nil || res.Code != 1 {
		t.Fatalf("spf check --json: %v: %s", err, res)
	}
	if check.Domain != "unaligned.test" || check.Verdict != "fail" || !strings.Contains(check.Fix, "add include:_spf.upstream.test") || len(check.Records) == 0 || len(check.TestedIPs) == 0 {
		t.Fatalf("spf check --json: %+v", check)
	}
}

// A smarthost's own SPF policy applies to its users, whatever the
// configured default: "enforce" on one smarthost refuses an unaligned
// sender while the default route stays on "warn".
func TestSmarthostSPFPolicyAppliesToItsUsers(t *testing.T) {
	dns := dnstest.Start(t, spfZone)
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	strict := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	r.cfg.set("dns", "servers", `["`+dns.Addr()+`"]`)
	r.cfg.set("default_route", "spf_include", q("_spf.upstream.test"))
	r.start()
	r.addLoopbackSmarthost("strict", strict, "--spf-include", "_spf.upstream.test", "--spf-policy", "Enforce")
	if res := r.cli("", "smarthost", "show", "strict"); res.Code != 0 || !strings.Contains(res.Stdout, "SPF policy:  enforce") {
		t.Fatalf("smarthost show: %s", res)
	}
	r.addUser("app@unaligned.test", "app password 1")
	r.addUser("web@unaligned.test", "web password 1")
	if res := r.cli("", "user", "route", "app@unaligned.test", "--smarthost", "strict"); res.Code != 0 {
		t.Fatalf("user route: %s", res)
	}
	if res := r.cli("", "user", "show", "app@unaligned.test"); res.Code != 0 || !strings.Contains(res.Stdout, "SPF policy:      enforce (the route's)") {
		t.Fatalf("user show: %s", res)
	}

	c, err := r.login(true, "app@unaligned.test", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = sendMessage(c, "app@unaligned.test", []string{"bob@example.net"}, message("app@unaligned.test", "bob@example.net", "s", "x"))
	wantReply(t, err, 550, smtp.EnhancedCode{5, 7, 23}, "add include:_spf.upstream.test")

	// The default route's user is only warned: accepted, with the header.
	c2, err := r.login(true, "web@unaligned.test", "web password 1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sendMessage(c2, "web@unaligned.test", []string{"bob@example.net"}, message("web@unaligned.test", "bob@example.net", "w", "x")); err != nil {
		t.Fatalf("default route under warn: %v", err)
	}
	got := def.Wait(t, 1, 10*time.Second)
	if !strings.Contains(string(got[0].Data), "X-Outbound-SPF: fail") {
		t.Fatalf("no X-Outbound-SPF header under warn:\n%s", got[0].Data)
	}
	if n := len(strict.Messages()); n != 0 {
		t.Fatalf("the strict smarthost received %d messages", n)
	}
}

// The operator's queue commands: stats, bounce (with a notification to
// the sender), delete.
func TestQueueOperatorCommands(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{Rcpt: func(string) error { return testutil.ErrTemporary }})
	r := newRelay(t, up.Addr())
	r.start()
	r.addUser("app@example.com", "app password 1")
	c, err := r.login(true, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := sendMessage(c, "app@example.com", []string{"bob@example.net"}, message("app@example.com", "bob@example.net", "stuck", "x"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "a failed attempt", func() bool {
		return strings.Contains(r.cli("", "queue", "show", id).Stdout, "451 4.3.0")
	})
	if res := r.cli("", "queue", "stats"); res.Code != 0 || !strings.Contains(res.Stdout, "1 pending") {
		t.Fatalf("queue stats: %s", res)
	}
	if res := r.cli("", "queue", "bounce", id); res.Code != 0 {
		t.Fatalf("queue bounce: %s", res)
	}
	if res := r.cli("", "queue", "show", id); !strings.Contains(res.Stdout, "failed") || !strings.Contains(res.Stdout, "bounced by the relay's operator") {
		t.Fatalf("bounced message: %s", res)
	}
	var msgs []struct {
		ID   string `json:"id"`
		From string `json:"from"`
	}
	res := r.cli("", "queue", "list", "--status", "queued", "--json")
	if err := json.Unmarshal([]byte(res.Stdout), &msgs); err != nil || len(msgs) != 1 || msgs[0].From != "" {
		t.Fatalf("want exactly the notification (from <>) still queued: %s", res)
	}
	if res := r.cli("", "queue", "delete", msgs[0].ID); res.Code != 0 {
		t.Fatalf("queue delete: %s", res)
	}
	if res := r.cli("", "queue", "show", msgs[0].ID); res.Code == 0 || !strings.Contains(res.Stderr, "no such message") {
		t.Fatalf("deleted message still shown: %s", res)
	}
	if res := r.cli("", "queue", "bounce", "nonexistent"); res.Code == 0 {
		t.Fatalf("bouncing an unknown message succeeded: %s", res)
	}
}
