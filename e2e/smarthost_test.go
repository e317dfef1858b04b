package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/internal/dnstest"
	"outbound/internal/testutil"
)

// smarthostUpstream starts a STARTTLS upstream with a certificate from
// r.CA that requires user/password.
func smarthostUpstream(r *relay, user, password string) *testutil.Upstream {
	return testutil.StartUpstream(r.t, testutil.UpstreamOptions{
		TLS:      &tls.Config{Certificates: []tls.Certificate{r.CA.Issue(r.t, "127.0.0.1", "localhost")}},
		Username: user, Password: password,
	})
}

// addSmarthost runs `smarthost add` with the password on stdin.
func (r *relay) addSmarthost(name string, up *testutil.Upstream, user, password string, extra ...string) cliResult {
	r.t.Helper()
	args := append([]string{"smarthost", "add", name, "--host", up.Host, "--port", strconv.Itoa(up.Port),
		"--tls", "starttls", "--username", user, "--password-stdin", "--ca-file", r.CAFile}, extra...)
	return r.cli(password+"\n", args...)
}

// Two users on two smarthosts: each message arrives at its own upstream,
// authenticated with that smarthost's credentials. A user put back on the
// default route is delivered there again, under the default route's
// strict limits. Passwords never show up whole: not in output, not in the
// log, not in the database file.
func TestSmarthostRoutesEachUserToItsOwnUpstream(t *testing.T) {
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	r.cfg.set("limits", "default_route_per_hour", "3")
	r.cfg.set("limits", "default_route_per_day", "3")
	passA, passB := "secret-of-upstream-a-aaa111", "secret-of-upstream-b-bbb222"
	upA := smarthostUpstream(r, "user-a", passA)
	upB := smarthostUpstream(r, "user-b", passB)
	r.start()

	// A wrong password is refused with the step-by-step report...
	res := r.addSmarthost("a", upA, "user-a", "wrong-password-xxx999")
	if res.Code == 0 || !strings.Contains(res.Stdout, "auth") || !strings.Contains(res.Stderr, "failed at step auth") ||
		!strings.Contains(res.Stderr, "username or password") {
		t.Fatalf("smarthost add with a wrong password: %s", res)
	}
	// ...and the right one is tested and saved.
	if res := r.addSmarthost("a", upA, "user-a", passA); res.Code != 0 || !strings.Contains(res.Stdout, "result: ok") ||
		!strings.Contains(res.Stdout, "****aaa111") {
		t.Fatalf("smarthost add a: %s", res)
	}
	if res := r.addSmarthost("b", upB, "user-b", passB); res.Code != 0 {
		t.Fatalf("smarthost add b: %s", res)
	}
	res = r.cli("", "smarthost", "show", "a")
	if res.Code != 0 || !strings.Contains(res.Stdout, "****aaa111") || strings.Contains(res.Stdout, passA) {
		t.Fatalf("smarthost show: %s", res)
	}
	if res := r.cli("", "smarthost", "test", "b"); res.Code != 0 || !strings.Contains(res.Stdout, "result: ok") {
		t.Fatalf("smarthost test: %s", res)
	}

	r.addUser("one@example.com", "password one 1")
	r.addUser("two@example.com", "password two 2")
	r.addUser("three@example.com", "password three 3")
	// One unknown user: nobody moves.
	if res := r.cli("", "user", "route", "one@example.com", "nobody@example.com", "--smarthost", "a"); res.Code == 0 || !strings.Contains(res.Stderr, "nobody@example.com") {
		t.Fatalf("route with an unknown user: %s", res)
	}
	if res := r.cli("", "user", "route", "one@example.com", "three@example.com", "--smarthost", "a"); res.Code != 0 ||
		!strings.Contains(res.Stdout, "one@example.com now on route a (limits 50 per hour, 500 per day)") {
		t.Fatalf("user route: %s", res)
	}
	if res := r.cli("", "user", "route", "two@example.com", "--smarthost", "b"); res.Code != 0 {
		t.Fatalf("user route: %s", res)
	}
	if res := r.cli("", "smarthost", "del", "b"); res.Code == 0 || !strings.Contains(res.Stderr, "two@example.com") {
		t.Fatalf("deleting a smarthost in use: %s", res)
	}

	send := func(user, password, subject string) {
		t.Helper()
		c, err := r.login(false, user, password)
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		defer c.Quit()
		if _, err := sendMessage(c, user, []string{"rcpt@example.net"}, message(user, "rcpt@example.net", subject, "hello")); err != nil {
			t.Fatalf("%s sending %q: %v", user, subject, err)
		}
	}
	send("one@example.com", "password one 1", "via a")
	send("two@example.com", "password two 2", "via b")
	gotA := upA.Wait(t, 1, 20*time.Second)
	gotB := upB.Wait(t, 1, 20*time.Second)
	if gotA[0].From != "one@example.com" || gotA[0].User != "user-a" || gotB[0].From != "two@example.com" || gotB[0].User != "user-b" {
		t.Fatalf("wrong upstream: a got %s as %s, b got %s as %s", gotA[0].From, gotA[0].User, gotB[0].From, gotB[0].User)
	}

	// Every user of a to b in one call, then one back to the default route.
	if res := r.cli("", "user", "route", "--from", "a", "--smarthost", "b"); res.Code != 0 || !strings.Contains(res.Stdout, "three@example.com now on route b") {
		t.Fatalf("user route --from: %s", res)
	}
	if res := r.cli("", "user", "route", "one@example.com", "--default"); res.Code != 0 ||
		!strings.Contains(res.Stdout, "one@example.com now on route default (limits 3 per hour, 3 per day)") {
		t.Fatalf("user route --default: %s", res)
	}
	var usage struct {
		PerHour int `json:"per_hour"`
		PerDay  int `json:"per_day"`
	}
	if res := r.cli("", "usage", "one@example.com", "--json"); res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &usage) != nil || usage.PerDay != 3 {
		t.Fatalf("usage after reset: %s", res)
	}
	send("one@example.com", "password one 1", "via default")
	if got := def.Wait(t, 1, 20*time.Second); got[0].From != "one@example.com" {
		t.Fatalf("default upstream got %s", got[0].From)
	}
	if n := len(upA.Messages()); n != 1 {
		t.Fatalf("upstream a got %d messages, want 1", n)
	}
	if res := r.cli("", "smarthost", "del", "a"); res.Code != 0 {
		t.Fatalf("deleting an unused smarthost: %s", res)
	}
	// Pointing b at another upstream takes effect at the next delivery:
	// the router's cache follows smarthost changes.
	passC := "secret-of-upstream-c-ccc333"
	upC := smarthostUpstream(r, "user-c", passC)
	if res := r.cli(passC+"\n", "smarthost", "update", "b", "--port", strconv.Itoa(upC.Port), "--username", "user-c", "--password-stdin"); res.Code != 0 ||
		!strings.Contains(res.Stdout, "****ccc333") {
		t.Fatalf("smarthost update: %s", res)
	}
	send("two@example.com", "password two 2", "via c")
	if got := upC.Wait(t, 1, 20*time.Second); got[0].User != "user-c" {
		t.Fatalf("upstream c got AUTH user %q", got[0].User)
	}

	r.stop()
	db, err := os.ReadFile(filepath.Join(r.DataDir, "outbound.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{passA, passB, passC} {
		if bytes.Contains(db, []byte(p)) {
			t.Fatalf("the database file holds the password %q in the clear", p)
		}
		if strings.Contains(r.log(), p) {
			t.Fatalf("the relay logged the password %q", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(r.DataDir, "secrets.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets.key: %v", err)
	}
}

// `key rotate` re-encrypts the passwords under a new key file; after a
// restart the relay opens them with it and still delivers.
func TestSmarthostKeyRotateSurvivesRestart(t *testing.T) {
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	pass := "secret-of-upstream-a-aaa111"
	up := smarthostUpstream(r, "user-a", pass)
	r.start()
	if res := r.addSmarthost("a", up, "user-a", pass); res.Code != 0 {
		t.Fatalf("smarthost add: %s", res)
	}
	r.addUser("one@example.com", "password one 1")
	if res := r.cli("", "user", "route", "one@example.com", "--smarthost", "a"); res.Code != 0 {
		t.Fatalf("user route: %s", res)
	}
	keyPath := filepath.Join(r.DataDir, "secrets.key")
	before, _ := os.ReadFile(keyPath)
	if res := r.cli("", "key", "rotate"); res.Code != 0 || !strings.Contains(res.Stdout, "1 secrets re-encrypted (1 smarthost passwords,") {
		t.Fatalf("key rotate: %s", res)
	}
	after, _ := os.ReadFile(keyPath)
	if bytes.Equal(before, after) || len(after) == 0 {
		t.Fatal("secrets.key did not change")
	}
	if strings.Contains(r.log(), strings.TrimSpace(string(after))) {
		t.Fatal("the relay logged the new master key")
	}
	r.stop()
	r.start()
	c, err := r.login(false, "one@example.com", "password one 1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sendMessage(c, "one@example.com", []string{"rcpt@example.net"}, message("one@example.com", "rcpt@example.net", "after rotation", "x")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if got := up.Wait(t, 1, 20*time.Second); got[0].User != "user-a" {
		t.Fatalf("upstream got AUTH user %q", got[0].User)
	}
	if res := r.cli("", "smarthost", "test", "a"); res.Code != 0 {
		t.Fatalf("smarthost test after rotation: %s", res)
	}
}

// A user on its own smarthost is SPF-checked against that smarthost's
// include, not the default route's: the fix in the 550 names the
// smarthost's include.
func TestSmarthostUserIsSPFCheckedAgainstItsSmarthost(t *testing.T) {
	dns := dnstest.Start(t, spfZone)
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	r.cfg.set("dns", "servers", `["`+dns.Addr()+`"]`)
	r.cfg.set("default_route", "spf_include", q("other.test"))
	r.cfg.set("default_route", "spf_policy", q("enforce"))
	pass := "secret-of-upstream-a-aaa111"
	up := smarthostUpstream(r, "user-a", pass)
	r.start()
	if res := r.addSmarthost("a", up, "user-a", pass, "--spf-include", "_spf.upstream.test"); res.Code != 0 {
		t.Fatalf("smarthost add: %s", res)
	}
	r.addUser("app@example.com", "app password 1", "aligned.test", "unaligned.test")
	if res := r.cli("", "user", "route", "app@example.com", "--smarthost", "a"); res.Code != 0 {
		t.Fatalf("user route: %s", res)
	}
	c, err := r.login(true, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	_, err = sendMessage(c, "news@unaligned.test", []string{"bob@example.net"}, message("news@unaligned.test", "bob@example.net", "s", "x"))
	wantReply(t, err, 550, smtp.EnhancedCode{5, 7, 23}, "add include:_spf.upstream.test to its TXT record")
	c.Reset()
	// aligned.test includes the smarthost's include but not other.test:
	// accepted only because the user's route is the smarthost.
	if _, err := sendMessage(c, "news@aligned.test", []string{"bob@example.net"}, message("news@aligned.test", "bob@example.net", "aligned", "x")); err != nil {
		t.Fatalf("sender aligned with the smarthost refused: %v", err)
	}
	up.Wait(t, 1, 10*time.Second)
}
