package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"outbound/admin"
	"outbound/events"
)

// events prints the log through every page, filtered by --user and
// --since; --json prints one event a line.
func TestCLIEvents(t *testing.T) {
	r := newCLIRig(t)
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var evs []events.Event
	for i := range events.MaxLimit + 3 { // more than one page
		evs = append(evs, events.Event{At: base.Add(time.Duration(i) * time.Second), Kind: events.Received, Message: "m", User: "app@example.com", Recipient: "bob@example.net"})
	}
	evs = append(evs, events.Event{At: base.Add(time.Hour), Kind: events.Relayed, Message: "n", User: "other@example.com", Recipient: "carol@example.net", Upstream: "mailgun", Reply: "250 Queued. Thank you."})
	if err := r.Events.Record(evs...); err != nil {
		t.Fatal(err)
	}
	if out := r.mustRun("events"); strings.Count(out, "\n") != len(evs) || !strings.Contains(out, "relayed") || !strings.Contains(out, "via mailgun: 250 Queued. Thank you.") {
		t.Errorf("events: %d lines, last: %q", strings.Count(out, "\n"), out[strings.LastIndex(out[:len(out)-1], "\n")+1:])
	}
	out := r.mustRun("events", "--user", "other@example.com", "--json")
	var e events.Event
	if strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &e) != nil || e.Message != "n" {
		t.Errorf("events --user --json:\n%s", out)
	}
	if out := r.mustRun("events", "--since", base.Add(30*time.Minute).Format(time.RFC3339)); strings.Count(out, "\n") != 1 {
		t.Errorf("events --since:\n%s", out)
	}
	if _, _, err := r.run("", "events", "--since", "last week"); err == nil || !strings.Contains(err.Error(), "is not a time") {
		t.Errorf("a bad --since: %v", err)
	}
}

// --follow prints what is there, then what arrives later, each once.
func TestFollowEventsPrintsNewEventsOnce(t *testing.T) {
	r := newCLIRig(t)
	at := time.Now()
	if err := r.Events.Record(events.Event{At: at, Kind: events.Received, Message: "first"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen []string
	err := followEvents(ctx, r.Client, admin.EventFilter{}, 10*time.Millisecond, func(e events.Event) error {
		seen = append(seen, e.Message)
		switch e.Message {
		case "first": // arrives after the first poll
			return r.Events.Record(events.Event{At: at.Add(time.Second), Kind: events.Relayed, Message: "second"})
		case "second":
			cancel()
		}
		return nil
	})
	if err != nil || strings.Join(seen, ",") != "first,second" {
		t.Fatalf("followed %v, %v", seen, err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	if got, _ := parseSince("90m", now); !got.Equal(now.Add(-90 * time.Minute)) {
		t.Errorf("90m: %v", got)
	}
	if got, _ := parseSince("2030-01-01T00:00:00Z", now); !got.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339: %v", got)
	}
	if got, err := parseSince("2030-01-01", now); err != nil || got.Day() != 1 {
		t.Errorf("date: %v %v", got, err)
	}
}
