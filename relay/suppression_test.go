package relay

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"outbound/events"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/store"
	"outbound/suppression"
)

// RCPT to an address on the user's suppression list is refused with 550
// 5.1.1 naming the date, the original reason and how to lift it; other
// recipients of the same message go through.
func TestRcptToSuppressedRecipientIsRefusedWithTheReason(t *testing.T) {
	db := testutil.OpenDB(t)
	sup, err := suppression.OpenBolt(store.Bolt(db), suppression.PerUser, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Add(suppression.Entry{User: alice, Addr: "gone@example.net", Kind: suppression.Bounce,
		Reason: "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"}); err != nil {
		t.Fatal(err)
	}
	h := startRelay(t, func(o *Options) { o.Suppressions = sup })
	c := h.login(t, true)
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("Gone@example.net", nil)
	wantCode(t, err, 550, smtp.EnhancedCode{5, 1, 1}, "User unknown")
	for _, want := range []string{"suppressed since", "outbound suppression del Gone@example.net"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("reply %q does not say %q", err, want)
		}
	}
	if err := c.Rcpt("bob@example.net", nil); err != nil {
		t.Errorf("an unsuppressed recipient was refused: %v", err)
	}
}

// A queued message has a received event per recipient, written with it.
func TestQueuedMessageRecordsReceivedEvents(t *testing.T) {
	db := testutil.OpenDB(t)
	q, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := events.OpenBolt(store.Bolt(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := startRelay(t, func(o *Options) { o.Spool = q; o.Events = evs })
	c := h.login(t, true)
	if err := send(c, alice, []string{"bob@example.net", "carol@example.net"}, simpleMessage); err != nil {
		t.Fatal(err)
	}
	p, err := evs.List(events.Query{User: alice})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 2 || p.Events[0].Kind != events.Received || p.Events[1].Recipient != "carol@example.net" || p.Events[0].Message == "" {
		t.Fatalf("events = %+v", p.Events)
	}
	if _, err := q.Get(p.Events[0].Message); err != nil {
		t.Errorf("the event names no stored message: %v", err)
	}
}
