package delivery_test

import (
	"testing"

	"outbound/delivery"
	"outbound/events"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/store"
)

// A relayed message is found again by its Message-ID, as the providers'
// webhooks name it (package providerhooks).
func TestRelayedMessageFoundByMessageID(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	db := testutil.OpenDB(t)
	q, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := events.OpenBolt(store.Bolt(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{Events: evs})

	m := &queue.Message{User: sender, From: sender, MessageID: "<track-1@relay.example>",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, q, m.ID, "finished", finished)

	id, user, ok, err := evs.Match("track-1@relay.example", "")
	if err != nil || !ok || id != m.ID || user != sender {
		t.Fatalf("Match = %q %q %v %v, want %s of %s", id, user, ok, err, m.ID, sender)
	}
}
