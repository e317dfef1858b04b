package delivery_test

import (
	"reflect"
	"testing"

	"github.com/emersion/go-smtp"

	"outbound/delivery"
	"outbound/events"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/store"
)

// A message's tags and metadata (given to the send API) are in every event
// its delivery records: the relayed and failed recipients and the
// notification queued about it. The worker reads the message from the
// queue, so this also proves they are stored with it.
func TestEventsCarryTheMessagesTagsAndMetadata(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Rcpt: func(to string) error {
			if to == "nobody@example.net" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
			}
			return nil
		},
	})
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

	tags := []string{"receipt"}
	meta := map[string]string{"order_id": "A-1001"}
	m := &queue.Message{User: sender, From: sender, Tags: tags, Metadata: meta, Recipients: []queue.Recipient{
		{Addr: "bob@example.net", Status: queue.Queued}, {Addr: "nobody@example.net", Status: queue.Queued}}}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, q, m.ID, "finished", finished)

	got, err := evs.ForMessage(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[events.Kind]bool{}
	for _, e := range got {
		kinds[e.Kind] = true
		if !reflect.DeepEqual(e.Tags, tags) || !reflect.DeepEqual(e.Metadata, meta) {
			t.Errorf("%s event %+v lacks the message's tags and metadata", e.Kind, e)
		}
	}
	if !kinds[events.Relayed] || !kinds[events.Failed] || !kinds[events.DSNQueued] {
		t.Errorf("events %+v, want relayed, failed and dsn_queued", got)
	}
}
