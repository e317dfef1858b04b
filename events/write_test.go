package events

import (
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/queue"
)

// Write's hook stores the events in the queue's own transaction: they are
// there when the message is, and gone with it when that transaction rolls
// back.
func TestWriteStoresEventsInTheQueuesTransaction(t *testing.T) {
	b, db := openTest(t)
	q, err := queue.Open(db, nil)
	must(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	kept := &queue.Message{ID: "kept", User: "alice", Recipients: []queue.Recipient{{Addr: "bob@example.net"}}}
	must(t, q.Add(kept, []byte("x"), b.Write(Event{At: at, Kind: Received, Message: kept.ID, User: "alice", Recipient: "bob@example.net"})))

	refused := errors.New("refused")
	lost := &queue.Message{ID: "lost", User: "alice", Recipients: []queue.Recipient{{Addr: "carol@example.net"}}}
	err = q.Add(lost, []byte("x"),
		b.Write(Event{At: at, Kind: Received, Message: lost.ID, User: "alice", Recipient: "carol@example.net"}),
		func(*bolt.Tx) error { return refused })
	if !errors.Is(err, refused) {
		t.Fatalf("Add with a failing hook = %v, want %v", err, refused)
	}

	if evs, err := b.ForMessage(kept.ID); err != nil || len(evs) != 1 || evs[0].Recipient != "bob@example.net" {
		t.Errorf("events of the stored message = %+v, %v; want its received event", evs, err)
	}
	if evs, err := b.ForMessage(lost.ID); err != nil || len(evs) != 0 {
		t.Errorf("events of the rolled-back message = %+v, %v; want none", evs, err)
	}
}
