package admin_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"outbound/admin"
	"outbound/events"
	"outbound/internal/pgtest"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/store"
)

// BenchmarkClusterListing is GET /api/queue on node "a" of a cluster whose
// shared event log holds 12,000 events of messages node "b" holds (4,000
// messages, 3 events each, a minute apart): the listing reads back to its
// bound (10,000 events) every time. On the bbolt store, and on a real
// PostgreSQL (skipped without its binaries), where every page of events
// is a query.
func BenchmarkClusterListing(b *testing.B) {
	b.Run("bbolt", func(b *testing.B) { benchListing(b, store.Bolt(testutil.OpenDB(b))) })
	b.Run("postgres", func(b *testing.B) {
		dsn := pgtest.Shared(b).NewDatabase(b)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: "a"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		benchListing(b, p)
	})
}

func benchListing(b *testing.B, shared store.DB) {
	evlog, err := events.OpenBolt(shared, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var evs []events.Event
	for i := range 4000 {
		at := now.Add(-time.Duration(i) * time.Minute)
		for k, kind := range []events.Kind{events.Received, events.Relayed, events.ProviderDelivered} {
			evs = append(evs, events.Event{At: at.Add(time.Duration(k) * time.Second), Kind: kind,
				Message: fmt.Sprintf("b%05d", i), Node: "b", User: alice, Recipient: "x@example.net", Reply: "250 2.0.0 Ok"})
		}
	}
	for len(evs) > 0 {
		n := min(len(evs), 1000)
		if err := evlog.Record(evs[:n]...); err != nil {
			b.Fatal(err)
		}
		evs = evs[n:]
	}
	q, err := queue.Open(testutil.OpenDB(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(admin.Handler(admin.Options{Queue: q, Events: evlog, Node: "a", Token: token}))
	b.Cleanup(srv.Close)
	c := admin.NewClient(srv.URL, token, srv.Client())
	b.ResetTimer()
	for b.Loop() {
		msgs, err := c.Messages(admin.QueueFilter{})
		if err != nil || len(msgs) != 1000 {
			b.Fatalf("%d listed, %v; want 1000", len(msgs), err)
		}
	}
}
