package providerhooks

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/queue"
	"outbound/store"
)

// hasLabels fails t unless every event carries Q1's tags and metadata.
func hasLabels(t *testing.T, evs []events.Event) {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("no provider event recorded")
	}
	for _, e := range evs {
		if !reflect.DeepEqual(e.Tags, ourTags()) || !reflect.DeepEqual(e.Metadata, ourMetadata()) {
			t.Errorf("%s event for %s has tags %v metadata %v, want %v %v", e.Kind, e.Recipient, e.Tags, e.Metadata, ourTags(), ourMetadata())
		}
	}
}

// What any provider reports of a message is recorded with the message's
// tags and metadata, though the provider names it by Message-ID or its
// own id only: the event log has them from the message's earlier events.
func TestProviderEventsCarryTheMessagesTagsAndMetadata(t *testing.T) {
	t.Run("mailgun", func(t *testing.T) {
		r := newRig(t)
		body := mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "key-mailgun-test", r.now, "tok1")
		if w := r.post("/hooks/mg/mailgun", body, nil); w.Code != 200 {
			t.Fatalf("got %d %s", w.Code, w.Body)
		}
		hasLabels(t, r.timeline())
	})
	t.Run("sendgrid", func(t *testing.T) {
		r := newRig(t)
		body := testdata(t, "sendgrid_events.json")
		if w := r.post("/hooks/mg/sendgrid", body, r.sendGridSigned(body, r.now)); w.Code != 200 {
			t.Fatalf("got %d %s", w.Code, w.Body)
		}
		hasLabels(t, r.timeline())
	})
	t.Run("generic", func(t *testing.T) {
		r := newRig(t)
		body := testdata(t, "generic_bounced.json")
		if w := r.post("/hooks/mg/generic", body, r.genericSigned(body, r.now, "generic-test-secret")); w.Code != 200 {
			t.Fatalf("got %d %s", w.Code, w.Body)
		}
		hasLabels(t, r.timeline())
	})
	t.Run("ses", func(t *testing.T) {
		r := newPMSESRig(t)
		if w := r.post("/hooks/ses1/ses", notification(t, "ses-bounce.json", nil), "", ""); w.Code != http.StatusOK {
			t.Fatalf("got %d %s", w.Code, w.Body)
		}
		hasLabels(t, r.providerEvents(t, "Q-ses"))
	})
	t.Run("postmark", func(t *testing.T) {
		r := newPMSESRig(t)
		body := mustRead(t, "testdata/postmark-bounce.json")
		if w := r.post("/hooks/pm1/postmark", body, postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword); w.Code != http.StatusOK {
			t.Fatalf("got %d %s", w.Code, w.Body)
		}
		hasLabels(t, r.providerEvents(t, "Q-pm"))
	})
}

// The whole life of a tagged message in one file, as serve ties the
// stores: queued and relayed through the queue, reported delivered by
// Mailgun, then redacted by the retention sweep (the event store as the
// queue's journal). The provider's event and the redacted one carry the
// message's labels like the rest of its timeline.
func TestProviderAndRedactedEventsOfAQueuedMessageCarryItsLabels(t *testing.T) {
	r := newRig(t)
	q, err := queue.Open(r.db, func() time.Time { return r.now })
	if err != nil {
		t.Fatal(err)
	}
	q.SetJournal(r.events)
	m := &queue.Message{ID: "Q1", User: "app", From: "app@example.com", MessageID: "<" + ourMessageID + ">",
		Created: r.now.Add(-2 * time.Hour), Recipients: []queue.Recipient{{Addr: "alice@example.com", Status: queue.Queued}},
		Tags: ourTags(), Metadata: ourMetadata()}
	// Its received event, written with it as the relay does (the rig has
	// its relayed one).
	received := func(tx *bolt.Tx) error {
		return r.events.Put(store.BoltTx(tx), events.Event{At: m.Created, Kind: events.Received, Message: m.ID, User: m.User,
			Recipient: "alice@example.com", Tags: m.Tags, Metadata: m.Metadata})
	}
	if err := q.Add(m, []byte("Subject: receipt\r\n\r\nThank you.\r\n"), received); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	leased, err := q.Next(done)
	if err != nil {
		t.Fatal(err)
	}
	leased.Recipients[0].Status, leased.Recipients[0].Reply = queue.Delivered, "250 Great success"
	if err := q.Update(leased); err != nil {
		t.Fatal(err)
	}

	body := mailgunSigned(t, testdata(t, "mailgun_delivered.json"), "key-mailgun-test", r.now, "tok1")
	if w := r.post("/hooks/mg/mailgun", body, nil); w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	r.now = r.now.Add(2 * time.Hour)
	res, err := q.Sweep(time.Hour, 30*24*time.Hour)
	if err != nil || res.Redacted != 1 {
		t.Fatalf("sweep: %+v, %v; want Q1 redacted", res, err)
	}

	// In time order: Mailgun's documented event is of 2013.
	evs := r.timeline()
	var kinds []events.Kind
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if want := []events.Kind{events.ProviderDelivered, events.Received, events.Redacted}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("timeline %v, want %v", kinds, want)
	}
	hasLabels(t, evs)
}

// goneMessages matches every event to a message whose stub and events were
// deleted since (the retention sweep ran between Match and Record).
type goneMessages struct{}

func (goneMessages) Match(string, string) (string, string, bool, error) {
	return "Q-gone", "app", true, nil
}

// An event matched to a message that is gone by the time it is recorded
// is still recorded and answered 200, without labels: none are left to
// copy.
func TestProviderEventForAMessageGoneIsRecordedWithoutLabels(t *testing.T) {
	r := newRig(t)
	r.h.opts.Messages = goneMessages{}
	body := mailgunSigned(t, testdata(t, "mailgun_delivered.json"), "key-mailgun-test", r.now, "tok1")
	if w := r.post("/hooks/mg/mailgun", body, nil); w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	evs, err := r.events.ForMessage("Q-gone")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != events.ProviderDelivered || evs[0].Tags != nil || evs[0].Metadata != nil {
		t.Fatalf("events %+v, want one provider_delivered without labels", evs)
	}
}
