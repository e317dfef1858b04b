package delivery_test

import (
	"testing"

	"outbound/capture"
	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/route"
	"outbound/store"
)

// The capture upstream takes the message like any other: delivery hands
// it the bytes as they would have been sent, records every recipient
// delivered and the attempt under the route's name, and dials nothing.
func TestCaptureUpstreamRecordsDelivered(t *testing.T) {
	db := testutil.OpenDB(t)
	q, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := capture.OpenBolt(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	up := &route.Upstream{Name: route.DefaultName, Host: route.CaptureHost, Capture: true}
	startDelivery(t, q, routes{"": up}, delivery.Options{Capture: store})
	m := add(t, q, body, "bob@example.net", "carol@example.org")
	m = waitFor(t, q, m.ID, "finished", finished)
	for _, addr := range []string{"bob@example.net", "carol@example.org"} {
		if r := recipient(t, m, addr); r.Status != queue.Delivered {
			t.Fatalf("%s: %s (%s), want delivered", addr, r.Status, r.Reply)
		}
	}
	c, err := store.Get(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Body) != body || c.From != sender || len(c.To) != 2 || c.Subject != "hello" {
		t.Fatalf("captured %+v; want the queued bytes and envelope", c)
	}
}

// Without a capture store the capture route fails temporarily: the
// message waits, it is never dropped.
func TestCaptureWithoutStoreWaits(t *testing.T) {
	q := newQueue(t)
	up := &route.Upstream{Name: route.DefaultName, Host: route.CaptureHost, Capture: true}
	startDelivery(t, q, routes{"": up}, delivery.Options{})
	m := add(t, q, body, "bob@example.net")
	m = waitFor(t, q, m.ID, "attempted", attempted(1))
	if r := recipient(t, m, "bob@example.net"); r.Status != queue.Queued {
		t.Fatalf("status %s, want queued", r.Status)
	}
}
