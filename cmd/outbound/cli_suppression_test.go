package main

import (
	"encoding/json"
	"strings"
	"testing"

	"outbound/suppression"
)

// suppression add, list and del go through the API; "del ADDR" without
// --user, as the relay's 550 5.1.1 reply words it, lifts the address.
func TestCLISuppressionCommands(t *testing.T) {
	r := newCLIRig(t)
	r.AddUsers(t, "app@example.com")
	if out := r.mustRun("suppression", "add", "gone@example.net", "--user", "app@example.com", "--reason", "left the company"); !strings.HasPrefix(out, "gone@example.net suppressed for app@example.com until ") {
		t.Errorf("add = %q", out)
	}
	if e, _ := r.Suppressions.Lookup("app@example.com", "gone@example.net"); e == nil || e.Reason != "left the company" {
		t.Fatalf("stored: %+v", e)
	}
	if out := r.mustRun("suppression", "list"); !strings.Contains(out, "gone@example.net") || !strings.Contains(out, "left the company") || !strings.Contains(out, "manual") {
		t.Errorf("list:\n%s", out)
	}
	var list []suppression.Entry
	if out := r.mustRun("suppression", "list", "--user", "app@example.com", "--json"); json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Addr != "gone@example.net" {
		t.Errorf("list --json:\n%s", out)
	}
	if out := r.mustRun("suppression", "del", "gone@example.net"); out != "gone@example.net is no longer suppressed\n" {
		t.Errorf("del = %q", out)
	}
	if e, _ := r.Suppressions.Lookup("app@example.com", "gone@example.net"); e != nil {
		t.Fatal("still suppressed after del")
	}
	if _, _, err := r.run("", "suppression", "del", "gone@example.net"); err == nil || !strings.Contains(err.Error(), "no active suppression of gone@example.net") {
		t.Errorf("del twice: %v", err)
	}
	if _, _, err := r.run("", "suppression", "add", "x@example.net"); err == nil || !strings.Contains(err.Error(), "user is required") {
		t.Errorf("add without --user under scope user: %v", err)
	}
	if _, _, err := r.run("", "suppression", "del"); err == nil || err.Error() != "usage: outbound suppression del ADDR [--user U]" {
		t.Errorf("del without an address: %v", err)
	}
}
