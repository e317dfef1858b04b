package delivery_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"outbound/delivery"
	"outbound/events"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/store"
	"outbound/suppression"
)

// A recipient the upstream refuses with 550 5.1.1 (no such user) ends up on
// its sender's suppression list, and the attempt's events are in the
// message's timeline in order: one per recipient, then the notification
// to the sender; a recipient refused by policy is not
// suppressed.
func TestUnknownUserIsSuppressedAndEventsRecorded(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		Rcpt: func(to string) error {
			switch to {
			case "nobody@example.net":
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
			case "policy@example.net":
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender address rejected by policy"}
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
	sup, err := suppression.OpenBolt(store.Bolt(db), suppression.PerUser, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	startDelivery(t, q, routes{"": upstreamFor(up, "none", nil)}, delivery.Options{Events: evs, Suppressions: sup})

	m := add(t, q, body, "bob@example.net", "nobody@example.net", "policy@example.net")
	waitFor(t, q, m.ID, "finished", finished)

	e, err := sup.Lookup(sender, "Nobody@example.net")
	if err != nil || e == nil {
		t.Fatalf("nobody@example.net is not suppressed (%v)", err)
	}
	if e.Kind != suppression.Bounce || e.Reason != "550 5.1.1 no such user here" || e.Message != m.ID {
		t.Errorf("suppression = %+v", e)
	}
	if e, _ := sup.Lookup(sender, "policy@example.net"); e != nil {
		t.Errorf("a policy refusal was suppressed: %+v", e)
	}

	got, err := evs.ForMessage(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range got {
		seen = append(seen, string(e.Kind)+" "+e.Recipient)
	}
	want := []string{"relayed bob@example.net", "failed nobody@example.net", "failed policy@example.net", "dsn_queued "}
	if strings.Join(seen, ", ") != strings.Join(want, ", ") {
		t.Fatalf("events = %v, want %v", seen, want)
	}
	if got[1].Reply != "550 5.1.1 no such user here" || got[1].Upstream == "" || got[1].Attempt != 1 || got[1].User != sender {
		t.Errorf("failed event = %+v", got[1])
	}
	if !strings.Contains(got[3].Detail, sender) {
		t.Errorf("dsn event = %+v, want it to name the sender", got[3])
	}
}
