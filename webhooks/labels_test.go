package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
)

// A message's tags and metadata reach the user's endpoint in the payload's
// data, as the event log has them: a webhook needs no lookup to tell
// which of the sender's messages it is about.
func TestPayloadCarriesTheEventsTagsAndMetadata(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	r := newRig(t, Policy{AllowPrivate: true})
	_, _, err := r.wh.Register(context.Background(), "alice", srv.URL+"/hooks", nil)
	must(t, err)
	must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.Relayed, Message: "m1", User: "alice", Recipient: "bob@example.net",
		Tags: []string{"receipt"}, Metadata: map[string]string{"order_id": "A-1001"}}))
	r.run(t, Options{RootCAs: pool, Backoff: fast})
	waitFor(t, "the payload", func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) > 0 })

	mu.Lock()
	defer mu.Unlock()
	var p struct {
		Data struct {
			Tags     []string          `json:"tags"`
			Metadata map[string]string `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal(bodies[0], &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Data.Tags) != 1 || p.Data.Tags[0] != "receipt" || p.Data.Metadata["order_id"] != "A-1001" {
		t.Errorf("payload %s lacks the tags and metadata", bodies[0])
	}
}

// A provider's report and the redacted event are recorded knowing the
// message by its ID only; their payloads carry the message's tags and
// metadata all the same, as the event log copies them from its earlier
// events.
func TestProviderAndRedactedPayloadsCarryTheMessagesTagsAndMetadata(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	r := newRig(t, Policy{AllowPrivate: true})
	_, _, err := r.wh.Register(context.Background(), "alice", srv.URL+"/hooks", nil)
	must(t, err)
	now := time.Now()
	must(t, r.log.Record(events.Event{At: now, Kind: events.Relayed, Message: "m1", User: "alice", Recipient: "bob@example.net",
		Tags: []string{"receipt"}, Metadata: map[string]string{"order_id": "A-1001"}}))
	must(t, r.log.Record(events.Event{At: now.Add(time.Second), Kind: events.ProviderBounced, Message: "m1", User: "alice",
		Recipient: "bob@example.net", Reply: "550 5.1.1 no such user"}))
	must(t, r.db.Update(func(tx *bolt.Tx) error { return r.log.Redacted(tx, "m1", "alice", now.Add(time.Hour)) }))
	// The worker starts after the redacted event is queued: the sweep's
	// commit does not wake it.
	r.run(t, Options{RootCAs: pool, Backoff: fast})
	waitFor(t, "the three payloads", func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 3 })

	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, b := range bodies {
		var p struct {
			Type string `json:"type"`
			Data struct {
				Tags     []string          `json:"tags"`
				Metadata map[string]string `json:"metadata"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		types = append(types, p.Type)
		if len(p.Data.Tags) != 1 || p.Data.Tags[0] != "receipt" || p.Data.Metadata["order_id"] != "A-1001" {
			t.Errorf("payload %s lacks the tags and metadata", b)
		}
	}
	if want := "message.relayed message.provider_bounced message.redacted"; strings.Join(types, " ") != want {
		t.Errorf("payload types %v, want %s", types, want)
	}
}
