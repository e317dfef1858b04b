package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"outbound/events"
	"outbound/queue"
)

func TestOperatorOverviewShowsQueueAndDay(t *testing.T) {
	r := newRig(t)
	m := r.addMessage(t, "alice@example.com", "bob@example.net", "carol@example.net")
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	page := b.get("/")
	for _, want := range []string{"<h2 id=\"queue-heading\">Queue</h2>", "Recipients queued</p><p class=\"value\">2<",
		"Last 24 hours", "Messages accepted</p><p class=\"value\">1<", `href="/queue/` + m.ID + `"`,
		"Upstreams backed off", "None: every upstream is taking mail."} {
		if !strings.Contains(page.body, want) {
			t.Errorf("operator's Overview lacks %q", want)
		}
	}
}

func TestSenderOverviewShowsOwnUsageOnly(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	mine := r.addMessage(t, "alice@example.com", "x@example.net")
	theirs := r.addMessage(t, "bob@example.com", "y@example.net")
	b := r.browser(t)
	b.signIn("alice@example.com", senderPassword)
	page := b.get("/")
	for _, want := range []string{"Your usage", "This hour", "of 2", "Today (last 24 hours)", `<svg class="chart"`, mine.ID} {
		if !strings.Contains(page.body, want) {
			t.Errorf("sender's Overview lacks %q", want)
		}
	}
	for _, not := range []string{theirs.ID, "Upstreams backed off", "Recipients queued"} {
		if strings.Contains(page.body, not) {
			t.Errorf("sender's Overview shows %q", not)
		}
	}
}

func TestQueuePageListsAndFilters(t *testing.T) {
	r := newRig(t)
	alice := r.addMessage(t, "alice@example.com", "x@example.net")
	bob := r.addMessage(t, "bob@example.com", "y@example.net")
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	page := b.get("/queue")
	if page.status != http.StatusOK || !strings.Contains(page.body, alice.ID) || !strings.Contains(page.body, bob.ID) {
		t.Fatalf("/queue: %d, want both messages\n%s", page.status, page.body)
	}
	for _, want := range []string{`<label for="status">Status</label>`, `<label for="user">User</label>`, `aria-current="page">Queue<`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("/queue lacks %s", want)
		}
	}
	page = b.get("/queue?user=alice%40example.com")
	if !strings.Contains(page.body, alice.ID) || strings.Contains(page.body, bob.ID) {
		t.Errorf("filtered by alice: want only her message")
	}
	page = b.get("/queue?status=delivered")
	if strings.Contains(page.body, alice.ID) || !strings.Contains(page.body, "No messages.") {
		t.Errorf("filtered by delivered: want none")
	}
	if page := b.get("/queue?status=bogus"); page.status != http.StatusBadRequest || !strings.Contains(page.body, "status must be queued, delivered or failed") {
		t.Errorf("a bad status: %d, want the API's 400 and its message", page.status)
	}
}

func TestMessagePageShowsEnvelopeRecipientsAndAttempts(t *testing.T) {
	r := newRig(t)
	m := r.addMessage(t, "alice@example.com", "bob@example.net", "carol@example.net")
	m.Recipients[1].Status, m.Recipients[1].Reply, m.Recipients[1].DSNStatus = queue.Failed, "550 5.1.1 no such user", "5.1.1"
	m.Recipients[0].Reply, m.Recipients[0].DSNStatus = "451 4.3.0 try later", "4.3.0"
	m.RecordAttempt(queue.Attempt{At: r.clock.Now(), Upstream: "default", Duration: 2 * time.Second, Result: "451 4.3.0 try later"})
	if err := r.queue.Update(m); err != nil {
		t.Fatal(err)
	}
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	page := b.get("/queue/" + m.ID)
	if page.status != http.StatusOK {
		t.Fatalf("message page: %d", page.status)
	}
	for _, want := range []string{"Envelope", "alice@example.com", "Route</dt><dd>Default route", "Recipients", "bob@example.net",
		"carol@example.net", "550 5.1.1 no such user", ">permanent<", ">temporary<", "Attempts", "451 4.3.0 try later",
		">Retry now</button>", ">Bounce</button>", ">Delete</button>"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "body") && strings.Contains(page.body, "Subject: hello") {
		t.Error("the message page shows the message's content")
	}
}

// The message page shows the message's timeline from the event log: each
// event with its recipient, upstream reply and the provider's message ID.
func TestMessagePageShowsTheTimeline(t *testing.T) {
	r := newRig(t)
	m := r.addMessage(t, "alice@example.com", "bob@example.net")
	at := r.clock.Now()
	if err := r.events.Record(
		events.Event{At: at, Kind: events.Received, Message: m.ID, User: m.User, Recipient: "bob@example.net"},
		events.Event{At: at.Add(time.Second), Kind: events.Relayed, Message: m.ID, User: m.User, Recipient: "bob@example.net",
			Upstream: "default", Reply: "250 2.0.0 Ok: queued as 4Xq9", ProviderID: "4Xq9"},
		// What the provider said later, through its webhook.
		events.Event{At: at.Add(time.Minute), Kind: events.ProviderBounced, Message: m.ID, User: m.User, Recipient: "bob@example.net",
			Upstream: "default", Reply: "550 5.1.1 The email account that you tried to reach does not exist.", Detail: "permanent"},
	); err != nil {
		t.Fatal(err)
	}
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	page := b.get("/queue/" + m.ID)
	for _, want := range []string{"Timeline", ">received<", ">relayed<", "250 2.0.0 Ok: queued as 4Xq9", "message ID", ">4Xq9<",
		"provider_bounced", "550 5.1.1 The email account that you tried to reach does not exist."} {
		if !strings.Contains(page.body, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	if strings.Index(page.body, ">received<") > strings.Index(page.body, ">relayed<") {
		t.Error("the timeline is not in the order the events happened")
	}
}

// Each action asks first: a POST without confirmed=yes shows the question
// and does nothing.
func TestMessageActionsNeedConfirmation(t *testing.T) {
	r := newRig(t)
	m := r.addMessage(t, "alice@example.com", "bob@example.net")
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	for _, act := range []messageAction{retryAction, bounceAction, deleteAction} {
		confirm := b.get("/queue/" + m.ID + "/" + act.Path)
		if confirm.status != http.StatusOK || !strings.Contains(confirm.body, act.Question) ||
			!strings.Contains(confirm.body, ">"+act.Button+"</button>") || !strings.Contains(confirm.body, `name="confirmed" value="yes"`) {
			t.Errorf("%s: the confirmation page: %d\n%s", act.Path, confirm.status, confirm.body)
		}
		resp := b.submit("/", "/queue/"+m.ID+"/"+act.Path, nil)
		if resp.status != http.StatusOK || !strings.Contains(resp.body, act.Question) {
			t.Errorf("%s without confirmation: %d, want the question again", act.Path, resp.status)
		}
	}
	got, err := r.queue.Get(m.ID)
	if err != nil || got.Recipients[0].Status != queue.Queued {
		t.Fatalf("after unconfirmed actions: %+v %v; want the message untouched", got, err)
	}
}

func TestRetryNowReschedules(t *testing.T) {
	r := newRig(t)
	m := &queue.Message{User: "alice@example.com", From: "alice@example.com", NextAttempt: time.Now().Add(time.Hour),
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := r.queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	resp := b.submit("/", "/queue/"+m.ID+"/retry", url.Values{"confirmed": {"yes"}})
	if resp.status != http.StatusSeeOther || resp.location != "/queue/"+m.ID {
		t.Fatalf("retry: %d %q", resp.status, resp.location)
	}
	if page := b.get(resp.location); !strings.Contains(page.body, "Message "+m.ID+" will be retried now.") {
		t.Error("the message page does not say the retry was asked for")
	}
	// Due now: a delivery worker gets it at once, not in an hour.
	done := make(chan struct{})
	defer time.AfterFunc(10*time.Second, func() { close(done) }).Stop()
	if got, err := r.queue.Next(done); err != nil || got.ID != m.ID {
		t.Errorf("after Retry now the message is not due: %v %v", got, err)
	}
}

func TestBounceFailsRecipientsAndRefusalIsTheAPIs(t *testing.T) {
	r := newRig(t)
	m := r.addMessage(t, "alice@example.com", "bob@example.net")
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	resp := b.submit("/", "/queue/"+m.ID+"/bounce", url.Values{"confirmed": {"yes"}})
	if resp.status != http.StatusSeeOther {
		t.Fatalf("bounce: %d\n%s", resp.status, resp.body)
	}
	if page := b.get(resp.location); !strings.Contains(page.body, "bounced: its sender gets a delivery status notification") {
		t.Error("the message page does not say it bounced")
	}
	got, _ := r.queue.Get(m.ID)
	if got.Recipients[0].Status != queue.Failed {
		t.Fatalf("after bounce: %s, want failed", got.Recipients[0].Status)
	}
	// Again: the API refuses (409), and the page says what the API says.
	resp = b.submit("/", "/queue/"+m.ID+"/bounce", url.Values{"confirmed": {"yes"}})
	page := b.get(resp.location)
	apiSays := "message " + m.ID + " is finished: nothing left to bounce"
	if resp.location != "/queue/"+m.ID || !strings.Contains(page.body, `role="alert">`+apiSays) {
		t.Errorf("bouncing a finished message: the page does not show the API's refusal %q\n%s", apiSays, page.body)
	}
}

func TestDeleteRemovesMessage(t *testing.T) {
	r := newRig(t)
	m := r.addMessage(t, "alice@example.com", "bob@example.net")
	b := r.browser(t)
	b.signIn(operatorName, operatorPassword)
	resp := b.submit("/", "/queue/"+m.ID+"/delete", url.Values{"confirmed": {"yes"}})
	if resp.status != http.StatusSeeOther || resp.location != "/queue" {
		t.Fatalf("delete: %d %q", resp.status, resp.location)
	}
	if page := b.get("/queue"); !strings.Contains(page.body, "Message "+m.ID+" deleted.") || strings.Contains(page.body, `href="/queue/`+m.ID+`"`) {
		t.Error("the queue after delete: no notice, or the message still listed")
	}
	if _, err := r.queue.Get(m.ID); err == nil {
		t.Error("the message is still stored")
	}
	if page := b.get("/queue/" + m.ID); page.status != http.StatusNotFound {
		t.Errorf("the deleted message's page: %d, want 404", page.status)
	}
}

// A sender sees and acts on its own messages only: another's is not found
// (404, like one that does not exist), the operators' Queue is forbidden.
func TestSenderSeesOnlyItsOwnMessages(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	mine := r.addMessage(t, "alice@example.com", "x@example.net")
	theirs := r.addMessage(t, "bob@example.com", "y@example.net")
	b := r.browser(t)
	b.signIn("alice@example.com", senderPassword)

	page := b.get("/messages")
	if page.status != http.StatusOK || !strings.Contains(page.body, mine.ID) || strings.Contains(page.body, theirs.ID) {
		t.Errorf("/messages: %d, want alice's message only", page.status)
	}
	if strings.Contains(page.body, `<label for="user">`) {
		t.Error("a sender gets the user filter")
	}
	if page := b.get("/queue"); page.status != http.StatusForbidden {
		t.Errorf("a sender's GET /queue: %d, want 403", page.status)
	}
	if page := b.get("/queue/" + mine.ID); page.status != http.StatusOK || !strings.Contains(page.body, "x@example.net") {
		t.Errorf("a sender's own message: %d", page.status)
	}
	for _, p := range []string{"/queue/" + theirs.ID, "/queue/" + theirs.ID + "/retry", "/queue/" + theirs.ID + "/delete"} {
		if page := b.get(p); page.status != http.StatusNotFound || strings.Contains(page.body, "y@example.net") {
			t.Errorf("a sender's GET %s: %d, want 404 showing nothing of it", p, page.status)
		}
	}
	for _, act := range []string{"retry", "bounce", "delete"} {
		if resp := b.submit("/", "/queue/"+theirs.ID+"/"+act, url.Values{"confirmed": {"yes"}}); resp.status != http.StatusNotFound {
			t.Errorf("a sender's POST %s of another's message: %d, want 404", act, resp.status)
		}
	}
	if got, err := r.queue.Get(theirs.ID); err != nil || got.Recipients[0].Status != queue.Queued {
		t.Errorf("bob's message after alice's attempts: %+v %v", got, err)
	}
	// Its own it may delete.
	if resp := b.submit("/", "/queue/"+mine.ID+"/delete", url.Values{"confirmed": {"yes"}}); resp.status != http.StatusSeeOther || resp.location != "/messages" {
		t.Errorf("a sender deleting its own message: %d %q", resp.status, resp.location)
	}
}
