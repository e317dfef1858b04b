package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// addLoopbackSmarthost runs `smarthost add NAME` for a loopback upstream
// without TLS or AUTH.
func (r *relay) addLoopbackSmarthost(name string, up *testutil.Upstream, extra ...string) {
	r.t.Helper()
	args := append([]string{"smarthost", "add", name, "--host", up.Host, "--port", strconv.Itoa(up.Port), "--tls", "none"}, extra...)
	if res := r.cli("", args...); res.Code != 0 {
		r.t.Fatalf("smarthost add %s: %s", name, res)
	}
}

// sendAs submits one message from user to rcpt@example.net and returns its
// queue ID.
func (r *relay) sendAs(user, password, subject string) string {
	r.t.Helper()
	c, err := r.login(false, user, password)
	if err != nil {
		r.t.Fatalf("login %s: %v", user, err)
	}
	defer c.Quit()
	id, err := sendMessage(c, user, []string{"rcpt@example.net"}, message(user, "rcpt@example.net", subject, "hello"))
	if err != nil {
		r.t.Fatalf("%s sending %q: %v", user, subject, err)
	}
	return id
}

// A user on smarthost a whose fallback is b. While a works, its mail goes
// to a alone. Once a is stopped (its port closed), the next message
// arrives at b, exactly once, and `queue show` credits b.
func TestSmarthostFailoverToFallback(t *testing.T) {
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	upA := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	upB := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r.start()
	r.addLoopbackSmarthost("b", upB)
	r.addLoopbackSmarthost("a", upA, "--fallback", "b")
	if res := r.cli("", "smarthost", "show", "a"); res.Code != 0 || !strings.Contains(res.Stdout, "Fallback:    b") {
		t.Fatalf("smarthost show a: %s", res)
	}
	r.addUser("app@example.com", "app password 1")
	if res := r.cli("", "user", "route", "app@example.com", "--smarthost", "a"); res.Code != 0 {
		t.Fatalf("user route: %s", res)
	}

	// delivered waits until `queue show` reports the message delivered.
	delivered := func(id string) string {
		t.Helper()
		var show cliResult
		waitUntil(t, 20*time.Second, "queue show to report "+id+" delivered", func() bool {
			show = r.cli("", "queue", "show", id)
			return show.Code == 0 && strings.Contains(show.Stdout, "delivered")
		})
		return show.Stdout
	}

	first := r.sendAs("app@example.com", "app password 1", "while a is up")
	if got := upA.Wait(t, 1, 20*time.Second); got[0].From != "app@example.com" {
		t.Fatalf("a got a message from %s", got[0].From)
	}
	// Only once the relay has a's reply: stopping a between its receiving
	// the message and its answer would leave the relay unsure (no failover).
	if show := delivered(first); !strings.Contains(show, "via a (") {
		t.Fatalf("queue show of the first message:\n%s", show)
	}

	upA.Close()
	id := r.sendAs("app@example.com", "app password 1", "while a is down")
	got := upB.Wait(t, 1, 20*time.Second)
	if subj := parseReceived(t, got[0].Data).Subject; subj != "while a is down" {
		t.Fatalf("b got %q", subj)
	}
	show := delivered(id)
	if !strings.Contains(show, "via b (fallback of a)") {
		t.Errorf("queue show does not credit the fallback:\n%s", show)
	}
	if strings.Count(show, " via ") != 1 {
		t.Errorf("queue show lists more than one attempt:\n%s", show)
	}
	if n := len(upA.Messages()); n != 1 {
		t.Errorf("a got %d messages, want only the first", n)
	}
	if n := len(upB.Messages()); n != 1 {
		t.Errorf("b got %d messages, want 1", n)
	}
	if !strings.Contains(r.log(), "failing over to its fallback") {
		t.Error("the relay did not log the failover")
	}
}

// A fallback that cannot be built (here: its CA file is gone) costs only
// the failover: mail still leaves through the smarthost itself, and the
// problem is logged once, not per message.
func TestSmarthostUnusableFallbackIsLoggedOnce(t *testing.T) {
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	upA := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	pass := "secret-of-upstream-b-bbb222"
	upB := smarthostUpstream(r, "user-b", pass)
	caB := testutil.WriteFile(t, t.TempDir(), "b-ca.pem", r.CA.PEM)
	r.start()
	if res := r.cli(pass+"\n", "smarthost", "add", "b", "--host", upB.Host, "--port", strconv.Itoa(upB.Port),
		"--tls", "starttls", "--username", "user-b", "--password-stdin", "--ca-file", caB); res.Code != 0 {
		t.Fatalf("smarthost add b: %s", res)
	}
	r.addLoopbackSmarthost("a", upA, "--fallback", "b")
	r.addUser("app@example.com", "app password 1")
	if res := r.cli("", "user", "route", "app@example.com", "--smarthost", "a"); res.Code != 0 {
		t.Fatalf("user route: %s", res)
	}
	if err := os.Remove(caB); err != nil {
		t.Fatal(err)
	}

	r.sendAs("app@example.com", "app password 1", "one")
	r.sendAs("app@example.com", "app password 1", "two")
	upA.Wait(t, 2, 20*time.Second)
	if n := len(upB.Messages()); n != 0 {
		t.Errorf("b got %d messages", n)
	}
	const problem = "fallback smarthost unusable"
	if n := strings.Count(r.log(), problem); n != 1 {
		t.Errorf("the relay logged %q %d times, want once", problem, n)
	}
	if !strings.Contains(r.log(), filepath.Base(caB)) {
		t.Error("the log does not say what is wrong with the fallback")
	}
}
