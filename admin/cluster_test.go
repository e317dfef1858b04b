package admin_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"outbound/admin"
	"outbound/events"
	"outbound/internal/admintest"
	"outbound/queue"
)

// The tests of a cluster: the rig is node "a", and the event log (the
// shared one, here the rig's bbolt file) holds events that node "b"
// shipped for messages in b's queue, of which a has no record. The
// senders are alice and bob (own_smarthost_test.go).

// nodeA is the rig as node "a" of a cluster.
func nodeA(t *testing.T) *admintest.Rig {
	return admintest.NewWith(t, func(o *admin.Options) { o.Node = "a" })
}

// onNodeB records the events node b ships for a message of user it holds,
// received at at for rcpts; more are events after that (Message, Node and
// User are filled in).
func onNodeB(t *testing.T, r *admintest.Rig, id, user string, at time.Time, rcpts []string, more ...events.Event) {
	t.Helper()
	var evs []events.Event
	for _, rc := range rcpts {
		evs = append(evs, events.Event{At: at, Kind: events.Received, Recipient: rc})
	}
	evs = append(evs, more...)
	for i := range evs {
		evs[i].Message, evs[i].Node, evs[i].User = id, "b", user
	}
	if err := r.Events.Record(evs...); err != nil {
		t.Fatal(err)
	}
}

// bMessage is alice's message on node b: one recipient relayed, one
// deferred once, then the provider's report of the first.
func bMessage(t *testing.T, r *admintest.Rig, at time.Time) string {
	t.Helper()
	const id = "b0000000000000001"
	onNodeB(t, r, id, alice, at, []string{"x@example.net", "y@example.net"},
		events.Event{At: at.Add(time.Second), Kind: events.Relayed, Recipient: "x@example.net", Upstream: "default", Reply: "250 2.0.0 ok", Attempt: 1, MessageID: "abc@example.com"},
		events.Event{At: at.Add(2 * time.Second), Kind: events.Deferred, Recipient: "y@example.net", Upstream: "default", Reply: "451 4.7.1 greylisted", Attempt: 1},
		events.Event{At: at.Add(3 * time.Second), Kind: events.ProviderBounced, Recipient: "x@example.net", Reply: "550 later"})
	return id
}

// GET /api/messages/{id} of a message node b holds: its node, what its
// events tell of it, and its timeline.
func TestClusterMessageDetailOfAnotherNodesMessage(t *testing.T) {
	r := nodeA(t)
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	id := bMessage(t, r, at)

	d, err := r.Client.MessageDetail(id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Node != "b" || d.Message == nil || d.ID != id || d.User != alice || !d.Created.Equal(at) || d.MessageID != "abc@example.com" || len(d.Events) != 5 {
		t.Fatalf("detail: node %q, %+v, %d events", d.Node, d.Message, len(d.Events))
	}
	want := []queue.Recipient{
		{Addr: "x@example.net", Status: queue.Delivered, Reply: "250 2.0.0 ok", Attempts: 1},
		{Addr: "y@example.net", Status: queue.Queued, Reply: "451 4.7.1 greylisted", Attempts: 1},
	}
	if len(d.Recipients) != len(want) {
		t.Fatalf("recipients: %+v", d.Recipients)
	}
	for i, w := range want {
		g := d.Recipients[i]
		if g.Addr != w.Addr || g.Status != w.Status || g.Reply != w.Reply || g.Attempts != w.Attempts {
			t.Errorf("recipient %d: %+v, want %+v", i, g, w)
		}
	}
	if !d.Finished.IsZero() {
		t.Errorf("finished at %v with a recipient deferred", d.Finished)
	}
	if code, _, raw := call(t, r, "GET", "/api/messages/"+id, "", token); code != 200 || !strings.Contains(raw, `"node": "b"`) {
		t.Errorf("raw: %d %s", code, raw)
	}

	// A single relay (no node name) reads the node in the events alike.
	single := admintest.New(t)
	bMessage(t, single, at)
	if d, err := single.Client.MessageDetail(id); err != nil || d.Node != "b" {
		t.Errorf("without Options.Node: %+v %v", d, err)
	}
}

// A message whose events name this node, or none, is this node's: with
// no queue record it is not found (it was deleted), not "elsewhere".
func TestClusterOwnNodesEventsAreNotElsewhere(t *testing.T) {
	r := nodeA(t)
	at := time.Now().Add(-time.Hour)
	if err := r.Events.Record(
		events.Event{At: at, Kind: events.Received, Message: "gone-a", Node: "a", User: alice, Recipient: "x@example.net"},
		events.Event{At: at, Kind: events.Received, Message: "gone-none", User: alice, Recipient: "x@example.net"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gone-a", "gone-none"} {
		if _, err := r.Client.Message(id); statusOf(err) != http.StatusNotFound {
			t.Errorf("GET /api/queue/%s: %v, want 404", id, err)
		}
	}
	msgs, err := r.Client.Messages(admin.QueueFilter{})
	if err != nil || len(msgs) != 0 {
		t.Errorf("listing: %v %v, want none", ids(msgs), err)
	}
}

// Node a's listing has its own queue and the messages b holds, each once
// and marked with its node, filtered by user, status and sender alike.
func TestClusterListingHasOtherNodesMessages(t *testing.T) {
	r := nodeA(t)
	now := time.Now()
	local := &queue.Message{From: alice, User: alice, Recipients: []queue.Recipient{{Addr: "z@example.net", Status: queue.Queued}}}
	if err := r.Queue.Add(local, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	// The events a ships of its own message name it.
	if err := r.Events.Record(events.Event{At: now, Kind: events.Received, Message: local.ID, Node: "a", User: alice, Recipient: "z@example.net"}); err != nil {
		t.Fatal(err)
	}
	aliceB := bMessage(t, r, now.Add(-time.Hour))
	const bobB, old = "b0000000000000002", "b0000000000000003"
	onNodeB(t, r, bobB, bob, now.Add(-2*time.Hour), []string{"w@example.net"},
		events.Event{At: now.Add(-2 * time.Hour), Kind: events.Failed, Recipient: "w@example.net", Reply: "550 5.1.1 no such user"})
	// Received a month ago: the listing reads back to the log's start.
	onNodeB(t, r, old, alice, now.Add(-30*24*time.Hour), []string{"v@example.net"})

	all, err := r.Client.Messages(admin.QueueFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); got != strings.Join([]string{local.ID, aliceB, bobB, old}, ",") {
		t.Fatalf("listing: %s, want a's own first, then b's newest first", got)
	}
	for _, m := range all {
		if want := map[bool]string{true: "", false: "b"}[m.ID == local.ID]; m.Node != want {
			t.Errorf("%s: node %q, want %q", m.ID, m.Node, want)
		}
	}
	for _, c := range []struct {
		f    admin.QueueFilter
		want string
	}{
		{admin.QueueFilter{User: bob}, bobB},
		{admin.QueueFilter{Status: "failed"}, bobB},
		{admin.QueueFilter{Status: "delivered"}, aliceB},
		{admin.QueueFilter{Status: "queued", User: alice}, strings.Join([]string{local.ID, aliceB, old}, ",")},
	} {
		if msgs, err := r.Client.Messages(c.f); err != nil || ids(msgs) != c.want {
			t.Errorf("%+v: %s %v, want %s", c.f, ids(msgs), err, c.want)
		}
	}
	if msgs, err := r.Client.ActingFor(alice).Messages(admin.QueueFilter{}); err != nil || ids(msgs) != strings.Join([]string{local.ID, aliceB, old}, ",") {
		t.Errorf("alice's own: %s %v", ids(msgs), err)
	}
	if msgs, err := r.Client.ActingFor(bob).Messages(admin.QueueFilter{User: alice}); err != nil || ids(msgs) != "" {
		t.Errorf("bob asking for alice's: %s %v, want none", ids(msgs), err)
	}

	// Not a cluster (no node name): the queue alone, as ever.
	single := admintest.New(t)
	bMessage(t, single, now)
	if msgs, err := single.Client.Messages(admin.QueueFilter{}); err != nil || len(msgs) != 0 {
		t.Errorf("without Options.Node: %s %v, want none", ids(msgs), err)
	}
}

// The listing's look at the log is bounded: of 1100 messages b received
// over a week, it lists the newest 1000.
func TestClusterListingOfOtherNodesIsBounded(t *testing.T) {
	r := nodeA(t)
	now := time.Now()
	var evs []events.Event
	for i := range 1100 {
		evs = append(evs, events.Event{At: now.Add(-time.Duration(i) * 9 * time.Minute), Kind: events.Received,
			Message: fmt.Sprintf("b%05d", i), Node: "b", User: alice, Recipient: "x@example.net"})
	}
	if err := r.Events.Record(evs...); err != nil {
		t.Fatal(err)
	}
	msgs, err := r.Client.Messages(admin.QueueFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1000 || msgs[0].ID != "b00000" || msgs[999].ID != "b00999" {
		t.Fatalf("%d listed, first %s; want the newest 1000, b00000 to b00999", len(msgs), first(msgs))
	}
}

// A sender sees another node's message of its own, and someone else's as
// not found, without a word of where it is.
func TestClusterSenderOwnsOtherNodesMessageByItsEvents(t *testing.T) {
	r := nodeA(t)
	id := bMessage(t, r, time.Now())
	if d, err := r.Client.ActingFor(alice).MessageDetail(id); err != nil || d.Node != "b" {
		t.Errorf("alice's own: %+v %v", d, err)
	}
	mallory := r.Client.ActingFor("mallory@example.com")
	if _, err := mallory.MessageDetail(id); statusOf(err) != http.StatusNotFound || strings.Contains(err.Error(), "node") {
		t.Errorf("mallory reading alice's: %v, want a plain 404", err)
	}
	for name, act := range map[string]func(string) error{"retry": mallory.Retry, "bounce": mallory.Bounce, "delete": mallory.DeleteMessage} {
		if err := act(id); statusOf(err) != http.StatusNotFound || strings.Contains(err.Error(), "node") {
			t.Errorf("mallory's %s of alice's: %v, want a plain 404", name, err)
		}
	}
}

// Acting on a message another node holds is 409 naming the node, for the
// operator and for its sender; an unknown message is still 404.
func TestClusterActionsOnOtherNodesMessageAre409(t *testing.T) {
	r := nodeA(t)
	id := bMessage(t, r, time.Now())
	want := "message " + id + " is queued on node b; do this on that node"
	for _, c := range []*admin.Client{r.Client, r.Client.ActingFor(alice)} {
		acts := map[string]func(string) error{"retry": c.Retry, "bounce": c.Bounce, "delete": c.DeleteMessage,
			"get": func(id string) error { _, err := c.Message(id); return err }}
		for name, act := range acts {
			if err := act(id); statusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want 409 %q", name, err, want)
			}
			if err := act("nosuchid"); statusOf(err) != http.StatusNotFound {
				t.Errorf("%s of an unknown message: %v, want 404", name, err)
			}
		}
	}
}

func ids(msgs []*queue.Message) string {
	var s []string
	for _, m := range msgs {
		s = append(s, m.ID)
	}
	return strings.Join(s, ",")
}

func first(msgs []*queue.Message) string {
	if len(msgs) == 0 {
		return "none"
	}
	return msgs[0].ID
}
