package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"outbound/admin"
	"outbound/auth"
	"outbound/events"
	"outbound/internal/admintest"
	"outbound/store"
)

// newClusterRig is the web interface of node "a" of a cluster: the rig's
// admin API with Options.Node set, whose event log (the shared one, here
// the rig's bbolt file) the tests fill with what node "b" shipped.
func newClusterRig(t *testing.T) *rig {
	t.Helper()
	parts := admintest.NewParts(t)
	parts.Options.Node = "a"
	ops, err := auth.NewOperators(store.Bolt(parts.DB), parts.Users)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Add(operatorName, operatorPassword); err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Now().UTC()}
	h, err := Handler(Options{API: admin.Handler(parts.Options), Token: admintest.Token, Operators: ops, Users: parts.Users, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &rig{srv: srv, users: parts.Users, operators: ops, queue: parts.Queue, quota: parts.Quota, hosts: parts.Smarthosts,
		clock: c, events: parts.Events, supp: parts.Suppressions}
}

// shippedByB records the events node b shipped of alice's message bmsg:
// received for two recipients, one relayed, the other deferred.
func shippedByB(t *testing.T, r *rig) string {
	t.Helper()
	const id = "bmsg0000000000001"
	at := r.clock.Now().Add(-time.Hour)
	ev := func(d time.Duration, k events.Kind, rcpt, reply string) events.Event {
		return events.Event{At: at.Add(d), Kind: k, Message: id, Node: "b", User: "alice@example.com", Recipient: rcpt, Upstream: "default", Reply: reply}
	}
	if err := r.events.Record(
		ev(0, events.Received, "bob@example.net", ""),
		ev(0, events.Received, "carol@example.net", ""),
		ev(time.Second, events.Relayed, "bob@example.net", "250 2.0.0 Ok: queued as 4Xq9"),
		ev(2*time.Second, events.Deferred, "carol@example.net", "451 4.7.1 greylisted, try later"),
	); err != nil {
		t.Fatal(err)
	}
	return id
}

// A message node b holds has its page on node a: its node, recipients and
// states and timeline from the shared log, and no action buttons, which
// only b can act on; the sender sees its own, another sender nothing.
func TestMessagePageOfAnotherNodesMessage(t *testing.T) {
	r := newClusterRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "mallory@example.com")
	id := shippedByB(t, r)

	op := r.browser(t)
	op.signIn(operatorName, operatorPassword)
	page := op.get("/queue/" + id)
	if page.status != http.StatusOK {
		t.Fatalf("message page: %d\n%s", page.status, page.body)
	}
	for _, want := range []string{"Message <span class=\"mono\">" + id, "Queued on node <strong>b</strong>",
		"Open it on node b to retry, bounce or delete", "Node</dt><dd>b<", "alice@example.com",
		"bob@example.net", "carol@example.net", `<span class="badge badge-delivered">delivered</span>`,
		`<span class="badge badge-queued">queued</span>`, "451 4.7.1 greylisted, try later",
		"Timeline", ">received<", ">relayed<", ">deferred<", "250 2.0.0 Ok: queued as 4Xq9"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	for _, not := range []string{">Retry now</button>", ">Bounce</button>", ">Delete</button>", "/queue/" + id + "/retry", "No attempt yet"} {
		if strings.Contains(page.body, not) {
			t.Errorf("message page of another node's message has %q", not)
		}
	}

	alice := r.browser(t)
	alice.signIn("alice@example.com", senderPassword)
	if page := alice.get("/queue/" + id); page.status != http.StatusOK || !strings.Contains(page.body, "Queued on node <strong>b</strong>") {
		t.Errorf("alice's own message on node b: %d", page.status)
	}
	mallory := r.browser(t)
	mallory.signIn("mallory@example.com", senderPassword)
	if page := mallory.get("/queue/" + id); page.status != http.StatusNotFound || strings.Contains(page.body, "node b") {
		t.Errorf("mallory reading alice's message: %d, want the plain not-found page", page.status)
	}

	// Asked for by its URL, an action says where to take it.
	if page := op.get("/queue/" + id + "/retry"); page.status != http.StatusConflict || !strings.Contains(page.body, "is queued on node b; do this on that node") {
		t.Errorf("retry of another node's message: %d, want the API's 409", page.status)
	}
}

// The Queue page (and a sender's Messages) lists the messages other nodes
// hold beside this node's own, with their node in place of their route.
func TestQueuePageListsOtherNodesMessages(t *testing.T) {
	r := newClusterRig(t)
	r.addSender(t, "alice@example.com")
	local := r.addMessage(t, "alice@example.com", "dave@example.net")
	id := shippedByB(t, r)

	op := r.browser(t)
	op.signIn(operatorName, operatorPassword)
	page := op.get("/queue")
	for _, want := range []string{local.ID, `href="/queue/` + id + `"`, ">on node b<", "2 messages."} {
		if !strings.Contains(page.body, want) {
			t.Errorf("/queue lacks %q", want)
		}
	}
	if page := op.get("/queue?status=delivered"); !strings.Contains(page.body, id) || strings.Contains(page.body, local.ID) {
		t.Errorf("/queue?status=delivered: want only b's message, whose bob@example.net was relayed")
	}
	alice := r.browser(t)
	alice.signIn("alice@example.com", senderPassword)
	if page := alice.get("/messages"); !strings.Contains(page.body, local.ID) || !strings.Contains(page.body, id) {
		t.Errorf("alice's Messages: want her message here and on node b")
	}
}
