package route_test

import (
	"path/filepath"
	"testing"
	"time"

	"outbound/capture"
	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/route"
	"outbound/smarthost"
	"outbound/store"
)

// A message of a user routed through a smarthost of kind capture lands in
// the capture store, delivered, by the real router, delivery and stores,
// while the default route (an upstream nothing listens on) is never tried.
func TestMessageThroughCaptureSmarthostIsCaptured(t *testing.T) {
	db := testutil.OpenDB(t)
	hosts, err := smarthost.Open(store.Bolt(db), filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hosts.Add(smarthost.Smarthost{Name: "staging", Kind: smarthost.KindCapture}, ""); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := capture.OpenBolt(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	host, port := "127.0.0.1", 9 // discard: nothing should dial it
	routes, err := route.New(route.Options{Default: route.Default{Host: host, Port: port, TLSMode: "none"}, MaxPerDay: 100, Smarthosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	returned := make(chan struct{})
	d := delivery.New(q, routes, delivery.Options{LocalName: "relay.test", Workers: 1, ConnectionsPerUpstream: 1,
		ConnectTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second, IdleConnection: time.Minute,
		RetryDelay: func(int) time.Duration { return time.Hour }, Capture: store})
	go func() { defer close(returned); d.Run(done) }()
	t.Cleanup(func() { close(done); <-returned })

	body := "From: app@example.com\r\nTo: bob@example.net\r\nSubject: staged\r\n\r\nhello\r\n"
	m := &queue.Message{User: "app@example.com", From: "app@example.com", Route: "staging",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := q.Get(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r := got.Recipients[0]; r.Status == queue.Delivered {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("not delivered within 10s: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := store.Get(m.ID)
	if err != nil {
		t.Fatalf("not in the capture store: %v", err)
	}
	if string(c.Body) != body || c.User != "app@example.com" || len(c.To) != 1 || c.To[0] != "bob@example.net" {
		t.Fatalf("captured %+v; want the queued bytes and envelope", c)
	}
}
