package events

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

func openTest(t *testing.T) (*Bolt, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b, err := OpenBolt(store.Bolt(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, db
}

func TestForMessageReturnsItsEventsInOrder(t *testing.T) {
	b, _ := openTest(t)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, b.Record(Event{At: t0, Kind: Received, Message: "m1", User: "alice", Recipient: "x@example.com"}))
	must(t, b.Record(Event{At: t0, Kind: Received, Message: "m2", User: "bob", Recipient: "y@example.com"}))
	must(t, b.Record(Event{At: t0.Add(time.Second), Kind: Deferred, Message: "m1", User: "alice", Attempt: 1},
		Event{At: t0.Add(time.Second), Kind: Relayed, Message: "m1", User: "alice", Attempt: 2}))
	evs, err := b.ForMessage("m1")
	must(t, err)
	var kinds []Kind
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
		if e.ID == "" {
			t.Errorf("event %v has no ID", e)
		}
	}
	if want := []Kind{Received, Deferred, Relayed}; !equal(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
}

func TestListPagesBySinceCursorAndUser(t *testing.T) {
	b, _ := openTest(t)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 5; i++ {
		must(t, b.Record(Event{At: t0.Add(time.Duration(i) * time.Minute), Kind: Received, Message: "m", User: "alice", Detail: string(rune('a' + i))}))
		must(t, b.Record(Event{At: t0.Add(time.Duration(i) * time.Minute), Kind: Received, Message: "n", User: "bob"}))
	}
	p, err := b.List(Query{User: "alice", Since: t0.Add(time.Minute), Limit: 2})
	must(t, err)
	if len(p.Events) != 2 || p.Events[0].Detail != "b" || p.Events[1].Detail != "c" || p.Next == "" {
		t.Fatalf("first page = %+v", p)
	}
	p, err = b.List(Query{User: "alice", Since: t0.Add(time.Minute), Cursor: p.Next, Limit: 2})
	must(t, err)
	if len(p.Events) != 2 || p.Events[0].Detail != "d" || p.Events[1].Detail != "e" {
		t.Fatalf("second page = %+v", p)
	}
	p, err = b.List(Query{User: "alice", Cursor: p.Events[1].ID})
	must(t, err)
	if len(p.Events) != 0 || p.Next != "" {
		t.Fatalf("past the end = %+v", p)
	}
	if _, err := b.List(Query{Cursor: "zz"}); err == nil {
		t.Error("an invalid cursor was accepted")
	}
}

func TestDeleteMessageRemovesOnlyItsEvents(t *testing.T) {
	b, _ := openTest(t)
	now := time.Now()
	must(t, b.Record(Event{At: now, Kind: Received, Message: "m1"}, Event{At: now, Kind: Received, Message: "m2"}))
	must(t, b.DeleteMessage("m1"))
	if evs, _ := b.ForMessage("m1"); len(evs) != 0 {
		t.Errorf("m1 still has %v", evs)
	}
	p, _ := b.List(Query{})
	if len(p.Events) != 1 || p.Events[0].Message != "m2" {
		t.Errorf("left = %+v", p.Events)
	}
}

func TestCountedAfterRecord(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	must(t, err)
	defer db.Close()
	counts := map[Kind]int{}
	b, err := OpenBolt(store.Bolt(db), func(k Kind) { counts[k]++ })
	must(t, err)
	must(t, b.Record(Event{Kind: Failed, Message: "m"}, Event{Kind: Failed, Message: "m"}))
	if counts[Failed] != 2 {
		t.Errorf("counts = %v", counts)
	}
}

func TestParseProviderID(t *testing.T) {
	for reply, want := range map[string]string{
		"250 2.0.0 Ok: queued as 4BQk2x1zZ3z9":                                "4BQk2x1zZ3z9",
		"250 Ok: queued as X-sg-abc.def":                                      "X-sg-abc.def",
		"250 Ok 0100018f7c1d2a3b-11111111-2222-3333-4444-555555555555-000000": "0100018f7c1d2a3b-11111111-2222-3333-4444-555555555555-000000",
		"250 Ok <0100018f7c1d2a3b>":                                           "0100018f7c1d2a3b",
		"250 Great success":                                                   "",
		"250 2.0.0 Ok":                                                        "",
		"250 OK id=1":                                                         "",
		"550 5.1.1 queued as nothing":                                         "",
		"":                                                                    "",
	} {
		if got := ParseProviderID(reply); got != want {
			t.Errorf("ParseProviderID(%q) = %q, want %q", reply, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal(a, b []Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRemovedDeletesWithTheStubAndRedactedIsRecorded(t *testing.T) {
	b, db := openTest(t)
	now := time.Now()
	must(t, b.Record(Event{At: now, Kind: Received, Message: "m1", User: "alice"}))
	must(t, db.Update(func(tx *bolt.Tx) error { return b.Redacted(tx, "m1", "alice", now) }))
	if evs, _ := b.ForMessage("m1"); len(evs) != 2 || evs[1].Kind != Redacted {
		t.Fatalf("events = %+v", evs)
	}
	must(t, db.Update(func(tx *bolt.Tx) error { return b.Removed(tx, "m1") }))
	if p, _ := b.List(Query{}); len(p.Events) != 0 {
		t.Errorf("left = %+v", p.Events)
	}
}
