package admin_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/queue"
)

// The queue stats count what happened in the last 24 hours: messages
// users submitted (not the relay's notifications), recipients delivered
// and failed; they name the oldest pending message and list backed-off
// upstreams (none here: the rig's delivery never runs).
func TestQueueStatsLast24Hours(t *testing.T) {
	r := admintest.New(t)
	now := time.Now()
	add := func(user string, created time.Time, rcpts ...queue.Recipient) *queue.Message {
		t.Helper()
		m := &queue.Message{User: user, From: user, Created: created, Recipients: rcpts}
		if err := r.Queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		return m
	}
	rc := func(status queue.Status, updated time.Time) queue.Recipient {
		return queue.Recipient{Addr: "x@example.net", Status: status, Updated: updated}
	}
	add("alice@example.com", now.Add(-time.Hour), rc(queue.Delivered, now.Add(-50*time.Minute)), rc(queue.Failed, now.Add(-40*time.Minute)))
	oldest := add("alice@example.com", now.Add(-3*time.Hour), rc(queue.Queued, now.Add(-3*time.Hour)))
	add("bob@example.com", now.Add(-48*time.Hour), rc(queue.Delivered, now.Add(-47*time.Hour)))
	add("", now.Add(-time.Minute), rc(queue.Queued, time.Time{})) // a notification

	st, err := r.Client.QueueStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Accepted24h != 2 || st.Delivered24h != 1 || st.Failed24h != 1 {
		t.Errorf("last 24 h: accepted %d delivered %d failed %d, want 2 1 1", st.Accepted24h, st.Delivered24h, st.Failed24h)
	}
	if st.OldestPendingID != oldest.ID {
		t.Errorf("oldest pending %q, want %s", st.OldestPendingID, oldest.ID)
	}
	_, raw := r.Call(t, "GET", "/api/queue-stats", admintest.Token, nil)
	var fields map[string]json.RawMessage
	json.Unmarshal([]byte(raw), &fields)
	if got := string(fields["backed_off"]); got != "[]" {
		t.Errorf("backed_off = %s, want [] (always present)", got)
	}
	if !strings.Contains(raw, `"accepted_24h": 2`) {
		t.Errorf("JSON lacks accepted_24h:\n%s", raw)
	}
}

// The Queue page filters by user and status, through the API.
func TestQueueListFiltersByUserAndStatus(t *testing.T) {
	r := admintest.New(t)
	for _, m := range []*queue.Message{
		{User: "alice@example.com", From: "alice@example.com", Recipients: []queue.Recipient{{Addr: "a@example.net", Status: queue.Queued}}},
		{User: "alice@example.com", From: "alice@example.com", Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.Failed}}},
		{User: "bob@example.com", From: "bob@example.com", Recipients: []queue.Recipient{{Addr: "c@example.net", Status: queue.Queued}}},
	} {
		if err := r.Queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		f    admin.QueueFilter
		want int
	}{
		{admin.QueueFilter{}, 3},
		{admin.QueueFilter{User: "alice@example.com"}, 2},
		{admin.QueueFilter{User: "alice@example.com", Status: "queued"}, 1},
		{admin.QueueFilter{User: "nobody@example.com"}, 0},
	} {
		msgs, err := r.Client.Messages(tc.f)
		if err != nil || len(msgs) != tc.want {
			t.Errorf("Messages(%+v) = %d messages, %v; want %d", tc.f, len(msgs), err, tc.want)
		}
	}
}

// Retrying or bouncing a finished message is a conflict that says why,
// not a server error or "not found".
func TestRetryAndBounceOfAFinishedMessageRefused(t *testing.T) {
	r := admintest.New(t)
	m := &queue.Message{User: "alice@example.com", From: "alice@example.com",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Delivered}}}
	if err := r.Queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	for action, call := range map[string]func(string) error{"retry": r.Client.Retry, "bounce": r.Client.Bounce} {
		err := call(m.ID)
		var apiErr *admin.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Message != "message "+m.ID+" is finished: nothing left to "+action {
			t.Errorf("%s of a finished message: %v, want 409 saying it is finished", action, err)
		}
	}
}
