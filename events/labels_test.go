package events

import (
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

// outboxRecorder is an Outbox that keeps what it was given.
type outboxRecorder struct{ got []Event }

func (o *outboxRecorder) Put(_ store.Tx, evs []Event) error {
	o.got = append(o.got, evs...)
	return nil
}
func (o *outboxRecorder) Committed() {}

// A provider's report and the redacted event are written knowing the
// message by its ID only; they carry its tags and metadata all the same,
// in the event log and in what the webhooks' outbox is given.
func TestProviderAndRedactedEventsCarryTheMessagesLabels(t *testing.T) {
	b, db := openTest(t)
	out := &outboxRecorder{}
	b.SetOutbox(out)
	tags, meta := []string{"receipt", "shop"}, map[string]string{"order_id": "A-1001"}
	t0 := time.Date(2026, 3, 2, 9, 12, 0, 0, time.UTC)
	must(t, b.Record(Event{At: t0, Kind: Received, Message: "m1", User: "alice", Recipient: "bob@example.net", Tags: tags, Metadata: meta},
		Event{At: t0, Kind: Received, Message: "m2", User: "alice", Recipient: "bob@example.net", Tags: []string{"other"}}))
	must(t, b.Record(Event{At: t0.Add(time.Minute), Kind: ProviderDelivered, Message: "m1", User: "alice", Recipient: "bob@example.net"}))
	must(t, db.Update(func(tx *bolt.Tx) error { return b.Redacted(tx, "m1", "alice", t0.Add(time.Hour)) }))

	evs, err := b.ForMessage("m1")
	must(t, err)
	if len(evs) != 3 {
		t.Fatalf("events = %+v", evs)
	}
	for _, e := range evs {
		if !reflect.DeepEqual(e.Tags, tags) || !reflect.DeepEqual(e.Metadata, meta) {
			t.Errorf("stored %s event has tags %v metadata %v, want %v %v", e.Kind, e.Tags, e.Metadata, tags, meta)
		}
	}
	var kinds []Kind
	for _, e := range out.got {
		if e.Message != "m1" {
			continue
		}
		kinds = append(kinds, e.Kind)
		if !reflect.DeepEqual(e.Tags, tags) || !reflect.DeepEqual(e.Metadata, meta) {
			t.Errorf("outbox's %s event has tags %v metadata %v, want %v %v", e.Kind, e.Tags, e.Metadata, tags, meta)
		}
	}
	if want := []Kind{Received, ProviderDelivered, Redacted}; !equal(kinds, want) {
		t.Errorf("outbox got %v, want %v", kinds, want)
	}
	// Listing the log finds them by tag too.
	p, err := b.List(Query{User: "alice"})
	must(t, err)
	n := 0
	for _, e := range p.Events {
		if len(e.Tags) > 0 && e.Tags[0] == "receipt" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d events listed with the tag receipt, want 3: %+v", n, p.Events)
	}
}

// The labels come from the events made from the message, whatever was
// recorded in between: a provider event stored without them (as before
// they were inherited) does not hide them.
func TestLabelsComeFromTheEventsMadeFromTheMessage(t *testing.T) {
	b, db := openTest(t)
	t0 := time.Date(2026, 3, 2, 9, 12, 0, 0, time.UTC)
	// An older provider event without labels sorts first.
	must(t, db.Update(func(tx *bolt.Tx) error {
		return b.Put(store.BoltTx(tx), Event{At: t0, Kind: ProviderDelivered, Message: "m1", Tags: nil})
	}))
	must(t, b.Record(Event{At: t0.Add(time.Second), Kind: Relayed, Message: "m1", Tags: []string{"receipt"}}))
	must(t, b.Record(Event{At: t0.Add(time.Minute), Kind: ProviderBounced, Message: "m1"}))
	evs, err := b.ForMessage("m1")
	must(t, err)
	if last := evs[len(evs)-1]; last.Kind != ProviderBounced || !reflect.DeepEqual(last.Tags, []string{"receipt"}) {
		t.Errorf("provider_bounced = %+v, want the relayed event's tags", last)
	}
}

// Events made from the message are stored as their writers give them (no
// read on the submission and delivery path); a message without labels
// gives none; a message whose events are gone gives none and the event is
// recorded all the same.
func TestLabelsOnlyWhereTheMessageHasThem(t *testing.T) {
	b, _ := openTest(t)
	now := time.Now()
	must(t, b.Record(Event{At: now, Kind: Received, Message: "m1", Tags: []string{"receipt"}}))
	must(t, b.Record(Event{At: now, Kind: Relayed, Message: "m1"}))
	must(t, b.Record(Event{At: now, Kind: Received, Message: "bare"}))
	must(t, b.Record(Event{At: now, Kind: ProviderDelivered, Message: "bare"}))
	must(t, b.Record(Event{At: now, Kind: ProviderComplained, Message: "gone"}))

	evs, err := b.ForMessage("m1")
	must(t, err)
	if len(evs) != 2 || evs[1].Kind != Relayed || evs[1].Tags != nil {
		t.Errorf("m1 = %+v, want the relayed event as given, without tags", evs)
	}
	for _, id := range []string{"bare", "gone"} {
		evs, err := b.ForMessage(id)
		must(t, err)
		last := evs[len(evs)-1]
		if last.Tags != nil || last.Metadata != nil {
			t.Errorf("%s's %s event = %+v, want no labels", id, last.Kind, last)
		}
	}
}
