package delivery

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
	"outbound/queue"
)

// Messages that wait for a backed-off upstream are judged on time as if
// they had been attempted. These tests use the rig of retry_test.go (real
// queue, injected clock) with an upstream nobody listens on.

// downRig is a rig whose upstream refuses connections.
func downRig(t *testing.T) *rig {
	t.Helper()
	host, p, err := net.SplitHostPort(testutil.FreePort(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return newRig(t, host, port)
}

// backOff makes the rig's upstream backed off now: a fresh message finds
// it down.
func (r *rig) backOff(t *testing.T) {
	t.Helper()
	m := r.attempt(t, r.add(t, "alice@example.com", nil, "dave@example.net"))
	if m.Recipients[0].Attempts != 1 {
		t.Fatalf("the message meant to find the upstream down was not attempted: %+v", m.Recipients[0])
	}
}

func TestBackedOffUpstreamStillGivesUpAfterMaxLifetime(t *testing.T) {
	r := downRig(t)
	tried := r.add(t, "alice@example.com", nil, "bob@example.net")
	waiting := r.add(t, "alice@example.com", nil, "carol@example.net")
	m := r.attempt(t, tried) // refused: the upstream is backed off from now
	lastReply := m.Recipients[0].Reply
	if m.Recipients[0].Attempts != 1 || lastReply == "" {
		t.Fatalf("first attempt: %+v", m.Recipients[0])
	}
	if m := r.attempt(t, waiting); m.Recipients[0].Attempts != 0 {
		t.Fatalf("a message was attempted while its upstream was backed off: %+v", m.Recipients[0])
	}

	r.clock.Advance(5*24*time.Hour + time.Minute)
	r.backOff(t) // the outage goes on
	for _, tc := range []struct {
		id, reply string
		attempts  int
	}{
		{tried, "gave up after 5 days: " + lastReply, 1},
		{waiting, "gave up after 5 days: upstream backed off", 0},
	} {
		m := r.attempt(t, tc.id)
		rc := m.Recipients[0]
		if rc.Status != queue.Failed || rc.Reply != tc.reply {
			t.Errorf("%s after 5 days of outage: %s %q; want failed with %q", rc.Addr, rc.Status, rc.Reply, tc.reply)
		}
		if rc.Attempts != tc.attempts {
			t.Errorf("%s: %d attempts, want still %d (waiting burns none)", rc.Addr, rc.Attempts, tc.attempts)
		}
		if m.Pending() || m.Finished.IsZero() {
			t.Errorf("%s: message not finished (next attempt %s)", rc.Addr, m.NextAttempt)
		}
	}
	dsns := r.dsns(t)
	if len(dsns) != 2 {
		t.Fatalf("%d notifications, want one failure notice per message", len(dsns))
	}
	for _, d := range dsns {
		body, _ := r.q.Body(d.ID)
		fields, _, _ := deliveryStatus(t, body)
		if f := fields[0]; f.Get("Action") != "failed" || !strings.HasPrefix(f.Get("Status"), "4.") || !strings.Contains(f.Get("Diagnostic-Code"), "gave up after 5 days") {
			t.Errorf("failure notice fields %v; want failed, 4.x.x, the reason", f)
		}
	}
}

func TestBackedOffUpstreamStillSendsTheDelayWarningOnce(t *testing.T) {
	r := downRig(t)
	id := r.add(t, "alice@example.com", nil, "bob@example.net")
	r.clock.Advance(4*time.Hour + time.Minute)
	r.backOff(t)

	for i := 0; i < 2; i++ {
		m := r.attempt(t, id)
		if rc := m.Recipients[0]; rc.Status != queue.Queued || rc.Attempts != 0 || !rc.DelayNotified {
			t.Fatalf("waiting message: %+v; want queued, not attempted, sender told", rc)
		}
		if !m.NextAttempt.After(r.clock.Now()) {
			t.Fatalf("next attempt %s is not after now", m.NextAttempt)
		}
	}
	dsns := r.dsns(t)
	if len(dsns) != 1 {
		t.Fatalf("%d delay notifications, want exactly 1", len(dsns))
	}
	body, _ := r.q.Body(dsns[0].ID)
	fields, _, _ := deliveryStatus(t, body)
	if f := fields[0]; f.Get("Action") != "delayed" || !strings.HasPrefix(f.Get("Status"), "4.") || f.Get("Will-Retry-Until") == "" {
		t.Fatalf("delay fields %v", f)
	}
}
