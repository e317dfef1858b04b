package delivery_test

import (
	"strings"
	"testing"
	"time"

	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
)

// A host a sender chose is connected to only on a public address, checked
// on the address dialed: neither the connection test nor delivery reaches
// an upstream on loopback, whether named by address or by a name that
// resolves there (as a name may after it was checked).
func TestConnectionTestRefusesNonPublicAddressForSenderHost(t *testing.T) {
	ca := testutil.NewCA(t)
	up := tlsUpstream(t, ca, false, "127.0.0.1", "localhost")
	tg := target(up, ca, "starttls")
	if rep := connTest(tg, 2*time.Second); !rep.OK {
		t.Fatalf("an operator's test fails:\n%s", rep.String())
	}
	sessions := up.Connections()
	tg.PublicOnly = true
	wantFailure(t, connTest(tg, 2*time.Second), "connect", "127.0.0.1 is a loopback address", "must be on a public address")
	tg.Host = "localhost"
	wantFailure(t, connTest(tg, 2*time.Second), "connect", "is a loopback address", "must be on a public address")
	if n := up.Connections(); n != sessions {
		t.Fatalf("the upstream saw %d sessions, want only the operator's test's %d", n, sessions)
	}
}

func TestDeliveryRefusesNonPublicAddressForSenderHost(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	u := upstreamFor(up, "none", nil)
	u.Name, u.Owner, u.PublicOnly = "own-alice", sender, true
	q := newQueue(t)
	startDelivery(t, q, routes{"own-alice": u}, delivery.Options{})

	m := &queue.Message{User: sender, From: sender, Route: "own-alice",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	bob := recipient(t, got, "bob@example.net")
	if bob.Status != queue.Queued || !strings.Contains(bob.Reply, "127.0.0.1 is a loopback address") {
		t.Fatalf("bob: %s, reply %q; want queued, refused at connect", bob.Status, bob.Reply)
	}
	if n := up.Connections(); n != 0 {
		t.Fatalf("the upstream saw %d sessions", n)
	}
}

// A user's own SMTP server never rides a connection authenticated with
// someone else's credentials: a sender naming the operator's host and
// username with a wrong password gets the upstream's refusal, not the
// operator's pooled session.
func TestOwnedUpstreamDoesNotShareConnections(t *testing.T) {
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{TLS: serverTLS(t, ca), Username: "relay-user", Password: "operator-pw"})
	shared := upstreamFor(up, "starttls", ca)
	shared.Username, shared.Password = "relay-user", "operator-pw"
	own := *shared
	own.Name, own.Owner, own.Password = "own-alice", sender, "guessed"
	q := newQueue(t)
	startDelivery(t, q, routes{"": shared, "own-alice": &own}, delivery.Options{Workers: 1, ConnectionsPerUpstream: 1})

	first := add(t, q, body, "bob@example.net")
	waitFor(t, q, first.ID, "finished", finished)
	m := &queue.Message{User: sender, From: sender, Route: "own-alice",
		Recipients: []queue.Recipient{{Addr: "carol@example.net", Status: queue.Queued}}}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	if c := recipient(t, got, "carol@example.net"); c.Status != queue.Queued || !strings.HasPrefix(c.Reply, "535") {
		t.Fatalf("carol: %s, reply %q; want queued with the upstream's 535", c.Status, c.Reply)
	}
	if n := len(up.Messages()); n != 1 {
		t.Fatalf("upstream got %d messages, want only the operator's", n)
	}
}
