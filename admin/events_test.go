package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"outbound/admin"
	"outbound/events"
	"outbound/internal/admintest"
	"outbound/queue"
)

// GET /api/messages/{id} is the message with its timeline; a sender gets
// only its own, another's is 404 as if it did not exist.
func TestMessageDetailHasItsEvents(t *testing.T) {
	r := admintest.New(t)
	m := &queue.Message{From: "alice@example.com", User: "alice@example.com",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := r.Queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if err := r.Events.Record(
		events.Event{At: at, Kind: events.Received, Message: m.ID, User: m.User, Recipient: "bob@example.net"},
		events.Event{At: at.Add(time.Second), Kind: events.Relayed, Message: m.ID, User: m.User, Recipient: "bob@example.net", Reply: "250 ok id=abc", ProviderID: "abc"},
		events.Event{At: at, Kind: events.Received, Message: "other", User: m.User}); err != nil {
		t.Fatal(err)
	}
	d, err := r.Client.MessageDetail(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != m.ID || len(d.Recipients) != 1 || len(d.Events) != 2 || d.Events[0].Kind != events.Received || d.Events[1].ProviderID != "abc" {
		t.Fatalf("detail: %+v events %+v", d.Message, d.Events)
	}
	if _, err := r.Client.ActingFor("alice@example.com").MessageDetail(m.ID); err != nil {
		t.Fatalf("the sender's own message: %v", err)
	}
	if _, err := r.Client.ActingFor("mallory@example.com").MessageDetail(m.ID); statusOf(err) != http.StatusNotFound {
		t.Fatalf("another sender's message: %v", err)
	}
	if _, err := r.Client.MessageDetail("nosuchid"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("an unknown message: %v", err)
	}
	// The fields of GET /api/queue/{id} are at the top level, next to events.
	if code, obj, raw := call(t, r, "GET", "/api/messages/"+m.ID, "", token); code != 200 || obj["id"] != m.ID || obj["events"] == nil {
		t.Fatalf("raw: %d %s", code, raw)
	}
}

// Paging by cursor returns every event once, in order, and the last
// page's next_cursor polls for newer ones; since, user and a sender's own
// view filter.
func TestEventsPaging(t *testing.T) {
	r := admintest.New(t)
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var evs []events.Event
	for i := range 5 {
		user := "alice@example.com"
		if i == 2 {
			user = "bob@example.com"
		}
		evs = append(evs, events.Event{At: base.Add(time.Duration(i) * time.Minute), Kind: events.Received, Message: "m" + string(rune('0'+i)), User: user})
	}
	if err := r.Events.Record(evs...); err != nil {
		t.Fatal(err)
	}
	var seen []string
	f := admin.EventFilter{Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		p, err := r.Client.Events(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			seen = append(seen, e.Message)
		}
		f.Cursor = p.NextCursor
		if !p.More {
			break
		}
	}
	if strings.Join(seen, ",") != "m0,m1,m2,m3,m4" {
		t.Fatalf("paged: %v", seen)
	}
	// Polling with the last cursor finds only what came since.
	if err := r.Events.Record(events.Event{At: base.Add(time.Hour), Kind: events.Relayed, Message: "m5", User: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	if p, err := r.Client.Events(f); err != nil || len(p.Events) != 1 || p.Events[0].Message != "m5" || p.More {
		t.Fatalf("poll after the end: %+v %v", p, err)
	}

	if p, _ := r.Client.Events(admin.EventFilter{Since: base.Add(3 * time.Minute)}); len(p.Events) != 3 || p.Events[0].Message != "m3" {
		t.Fatalf("since: %+v", p)
	}
	if p, _ := r.Client.Events(admin.EventFilter{User: "bob@example.com"}); len(p.Events) != 1 || p.Events[0].Message != "m2" {
		t.Fatalf("user: %+v", p)
	}
	bob := r.Client.ActingFor("bob@example.com")
	if p, err := bob.Events(admin.EventFilter{}); err != nil || len(p.Events) != 1 || p.Events[0].User != "bob@example.com" {
		t.Fatalf("bob's own: %+v %v", p, err)
	}
	if _, err := bob.Events(admin.EventFilter{User: "alice@example.com"}); statusOf(err) != http.StatusForbidden {
		t.Fatalf("bob asking for alice's: %v", err)
	}
}

func TestEventsBadInput(t *testing.T) {
	r := admintest.New(t)
	for _, c := range []struct{ query, want string }{
		{"since=yesterday", "since must be a time in RFC 3339 form"},
		{"cursor=zz", "cursor must be the next_cursor of an earlier page"},
		{"limit=0", "limit must be a number from 1 to 500"},
		{"limit=many", "limit must be a number from 1 to 500"},
	} {
		if code, _, raw := call(t, r, "GET", "/api/events?"+c.query, "", token); code != 400 || !strings.Contains(errorOf(raw), c.want) {
			t.Errorf("?%s: %d %s, want 400 %q", c.query, code, raw, c.want)
		}
	}
}
