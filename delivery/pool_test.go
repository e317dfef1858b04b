package delivery_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/route"
)

func TestConnectionsAreReused(t *testing.T) {
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{TLS: serverTLS(t, ca), Username: "relay-user", Password: "pw"})
	// testutil's Connections counts go-smtp sessions, two per STARTTLS
	// connection; the tap counts TCP connections.
	wire := startTap(t, up.Addr())
	u := &route.Upstream{Name: "default", Host: wire.host, Port: wire.port, TLSMode: "starttls",
		Username: "relay-user", Password: "pw", RootCAs: ca.Pool}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{Workers: 4, ConnectionsPerUpstream: 1})

	var ids []string
	for i := range 20 {
		ids = append(ids, add(t, q, fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", i, i), "bob@example.net").ID)
	}
	up.Wait(t, 20, 10*time.Second)
	for _, id := range ids {
		waitFor(t, q, id, "finished", finished)
	}
	seen := map[string]bool{}
	for _, m := range up.Messages() {
		seen[string(m.Data)] = true
	}
	if len(seen) != 20 {
		t.Errorf("upstream got %d distinct messages, want 20", len(seen))
	}
	if n := wire.connections(); n != 1 {
		t.Errorf("20 messages took %d connections (TLS + AUTH each), want 1", n)
	}
}

func TestConnectionIsReusedAfterRefusedRecipients(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Rcpt: func(to string) error {
			if to == "nobody@example.net" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		},
	})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{Workers: 1, ConnectionsPerUpstream: 1})

	refused := add(t, q, body, "nobody@example.net")
	waitFor(t, q, refused.ID, "finished", finished)
	ok := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, ok.ID, "finished", finished)
	if r := recipient(t, got, "bob@example.net"); r.Status != queue.Delivered {
		t.Fatalf("bob: %s (%q), want delivered over the reset connection", r.Status, r.Reply)
	}
	if n := up.Connections(); n != 1 {
		t.Errorf("took %d connections, want 1 (RSET after the refused transaction, then reuse)", n)
	}
}

func TestPerUpstreamConnectionLimit(t *testing.T) {
	b := &recorder{dataDelay: 10 * time.Millisecond}
	host, port := serve(t, b, nil, false, nil)
	u := &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "none"}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{Workers: 8, ConnectionsPerUpstream: 2})

	var ids []string
	for i := range 40 {
		ids = append(ids, add(t, q, fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", i, i), "bob@example.net").ID)
	}
	for _, id := range ids {
		waitFor(t, q, id, "finished", finished)
	}
	if n := len(b.messages()); n != 40 {
		t.Errorf("upstream got %d messages, want 40", n)
	}
	_, maxOpen, sessions, _ := b.stats()
	if maxOpen > 2 {
		t.Errorf("upstream saw %d concurrent sessions, want at most 2 (ConnectionsPerUpstream)", maxOpen)
	}
	if sessions > 2 {
		t.Errorf("upstream saw %d sessions in all, want at most 2 (kept and reused)", sessions)
	}
	t.Logf("%d workers, 40 messages: %d sessions, at most %d at once", 8, sessions, maxOpen)
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	b := &recorder{}
	host, port := serve(t, b, nil, false, nil)
	u := &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "none"}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{IdleConnection: 100 * time.Millisecond})

	m := add(t, q, body, "bob@example.net")
	waitFor(t, q, m.ID, "finished", finished)
	deadline := time.Now().Add(3 * time.Second)
	for {
		open, _, sessions, _ := b.stats()
		if sessions == 1 && open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3s, %d of %d upstream sessions still open; want the idle connection closed", open, sessions)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPooledConnectionClosedByUpstreamIsRedialed(t *testing.T) {
	first := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	q := newQueue(t)
	startDelivery(t, q, routes{"": upstreamFor(first, "none", nil)}, delivery.Options{Workers: 1, ConnectionsPerUpstream: 1})

	m1 := add(t, q, body, "bob@example.net")
	waitFor(t, q, m1.ID, "finished", finished) // its connection is back in the pool
	// The upstream restarts: the pooled connection is closed under us.
	first.Close()
	second := testutil.StartUpstreamAt(t, first.Addr(), testutil.UpstreamOptions{})

	m2 := add(t, q, body, "carol@example.net")
	msgs := second.Wait(t, 1, 5*time.Second)
	got := waitFor(t, q, m2.ID, "finished", finished)
	if !sameStrings(msgs[0].To, []string{"carol@example.net"}) {
		t.Errorf("restarted upstream got RCPT %v, want [carol@example.net]", msgs[0].To)
	}
	carol := recipient(t, got, "carol@example.net")
	if carol.Status != queue.Delivered || carol.Attempts != 1 || len(got.Attempts) != 1 || got.Attempts[0].Result != "ok" {
		t.Errorf("a closed pooled connection cost the message a failed attempt: %s", describe(got))
	}
}

func TestPooledConnectionTimedOutByUpstreamIsRedialed(t *testing.T) {
	b := &recorder{}
	host, port := serve(t, b, nil, false, func(s *smtp.Server) { s.ReadTimeout = 200 * time.Millisecond })
	u := &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "none"}
	q := newQueue(t)
	startDelivery(t, q, routes{"": u}, delivery.Options{Workers: 1, ConnectionsPerUpstream: 1})

	m1 := add(t, q, body, "bob@example.net")
	waitFor(t, q, m1.ID, "finished", finished)
	deadline := time.Now().Add(3 * time.Second)
	for open, _, _, _ := b.stats(); open != 0; open, _, _, _ = b.stats() {
		if time.Now().After(deadline) {
			t.Fatal("upstream never timed out the idle connection")
		}
		time.Sleep(10 * time.Millisecond)
	}

	m2 := add(t, q, body, "carol@example.net")
	got := waitFor(t, q, m2.ID, "finished or attempted", func(m *queue.Message) bool { return len(m.Attempts) > 0 })
	carol := recipient(t, got, "carol@example.net")
	if carol.Status != queue.Delivered || len(got.Attempts) != 1 || got.Attempts[0].Result != "ok" {
		t.Errorf("an idle timeout on a pooled connection cost the message a failed attempt: %s", describe(got))
	}
	if strings.Contains(carol.Reply, "421") {
		t.Errorf("carol's reply is the upstream's idle timeout: %q", carol.Reply)
	}
}
