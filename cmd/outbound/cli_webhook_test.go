package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"outbound/webhooks"
)

// webhook add prints the secret once; list shows the endpoint without
// it; enable and del act on it; a URL at a loopback address is refused.
func TestCLIWebhookCommands(t *testing.T) {
	r := newCLIRig(t)
	r.AddUsers(t, "app@example.com")
	out := r.mustRun("webhook", "add", "app@example.com", "https://93.184.216.34/hooks", "--events", "failed,provider_bounced")
	m := regexp.MustCompile(`webhook (ep_[0-9a-f]+) added for app@example.com: https://93.184.216.34/hooks\nsigning secret \(shown only now\): (whsec_\S+)\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("add = %q", out)
	}
	id, secret := m[1], m[2]
	list := r.mustRun("webhook", "list", "app@example.com")
	if !strings.Contains(list, id) || !strings.Contains(list, "failed,provider_bounced") || strings.Contains(list, secret) || !strings.Contains(list, "enabled") {
		t.Errorf("list:\n%s", list)
	}
	var eps []webhooks.Endpoint
	if out := r.mustRun("webhook", "list", "app@example.com", "--json"); json.Unmarshal([]byte(out), &eps) != nil || len(eps) != 1 || strings.Contains(out, secret) {
		t.Errorf("list --json:\n%s", out)
	}
	if out := r.mustRun("webhook", "enable", "app@example.com", id); !strings.HasPrefix(out, "webhook "+id+" enabled") {
		t.Errorf("enable = %q", out)
	}
	if _, _, err := r.run("", "webhook", "add", "app@example.com", "https://127.0.0.1/hooks"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("add at loopback: %v", err)
	}
	if out := r.mustRun("webhook", "del", "app@example.com", id); out != "webhook "+id+" deleted\n" {
		t.Errorf("del = %q", out)
	}
	if _, _, err := r.run("", "webhook", "del", "app@example.com"); err == nil || err.Error() != "usage: outbound webhook del USER ID" {
		t.Errorf("del without an ID: %v", err)
	}
}
