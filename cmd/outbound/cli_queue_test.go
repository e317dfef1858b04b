package main

import (
	"encoding/json"
	"strings"
	"testing"

	"outbound/queue"
)

// The queue commands act on the message named, print what the API
// answered, and --json prints the API's JSON.
func TestCLIQueueCommands(t *testing.T) {
	r := newCLIRig(t)
	m := &queue.Message{From: "app@example.com", User: "app@example.com",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}, {Addr: "carol@example.net", Status: queue.Queued}}}
	if err := r.Queue.Add(m, []byte("From: app@example.com\r\nSubject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}

	if out := r.mustRun("queue", "list"); !strings.Contains(out, m.ID) || !strings.Contains(out, "2 queued") {
		t.Errorf("queue list:\n%s", out)
	}
	var shown queue.Message
	if out := r.mustRun("queue", "show", m.ID, "--json"); json.Unmarshal([]byte(out), &shown) != nil || shown.ID != m.ID || len(shown.Recipients) != 2 {
		t.Errorf("queue show --json:\n%s", out)
	}
	if out := r.mustRun("queue", "flush", "--json"); out != "{\n  \"flushed\": 1\n}\n" {
		t.Errorf("queue flush --json = %q", out)
	}
	if out := r.mustRun("queue", "retry", m.ID); out != m.ID+" will be retried now\n" {
		t.Errorf("queue retry = %q", out)
	}
	if out := r.mustRun("queue", "stats"); !strings.Contains(out, "1 pending") || !strings.Contains(out, "2 queued, 0 delivered, 0 failed") {
		t.Errorf("queue stats:\n%s", out)
	}
	if out := r.mustRun("queue", "delete", m.ID); out != m.ID+" deleted\n" {
		t.Errorf("queue delete = %q", out)
	}
	if _, _, err := r.run("", "queue", "show", m.ID); err == nil || !strings.Contains(err.Error(), "no such message") {
		t.Errorf("queue show of a deleted message: %v", err)
	}
	if _, _, err := r.run("", "queue", "retry"); err == nil || err.Error() != "usage: outbound queue retry ID" {
		t.Errorf("queue retry without an ID: %v", err)
	}
}
