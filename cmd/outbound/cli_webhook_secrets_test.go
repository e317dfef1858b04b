package main

import (
	"strings"
	"testing"

	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/smarthost"
)

// smarthost update --webhook-signing-key-file stores the key sealed and
// prints it masked, without a connection test; --clear-webhook-secrets
// removes it.
func TestCLISmarthostWebhookSecrets(t *testing.T) {
	r := newCLIRig(t)
	if code, body := r.Call(t, "POST", "/api/smarthosts", admintest.Token, r.SmarthostRequest("mg")); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	const key = "key-0123456789abcdef-signing"
	file := testutil.WriteFile(t, t.TempDir(), "mg.key", []byte(key+"\n"))
	out := r.mustRun("smarthost", "update", "mg", "--webhook-signing-key-file", file, "--sns-topic-arn", "arn:aws:sns:eu-west-1:1:ses")
	if !strings.Contains(out, "mailgun_signing_key "+smarthost.Mask(key)) || strings.Contains(out, key) || strings.Contains(out, "connection test") {
		t.Fatalf("update:\n%s", out)
	}
	if got, _ := r.Smarthosts.WebhookSecrets("mg"); got["mailgun_signing_key"] != key || got["sns_topic_arn"] == "" {
		t.Fatalf("stored %v", got)
	}
	r.mustRun("smarthost", "update", "mg", "--clear-webhook-secrets", "mailgun_signing_key")
	if got, _ := r.Smarthosts.WebhookSecrets("mg"); got["mailgun_signing_key"] != "" {
		t.Fatalf("not cleared: %v", got)
	}
}

// smarthost show and smarthost update with webhook secrets name the path
// to give the smarthost's provider (from its preset), say whether the
// secret it needs is set, and list the other paths as answered too.
func TestCLISmarthostShowsItsProvidersWebhookPath(t *testing.T) {
	r := newCLIRig(t)
	req := r.SmarthostRequest("mg")
	req.Preset = "mailgun-eu" // the rig's host, port and TLS mode stay
	if code, body := r.Call(t, "POST", "/api/smarthosts", admintest.Token, req); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	first := "Webhook:     give the provider /hooks/mg/mailgun on the provider_webhooks listener (Mailgun, from preset mailgun-eu); it needs mailgun_signing_key"
	also := "also answered, with their own secrets: /hooks/mg/sendgrid, /hooks/mg/postmark, /hooks/mg/ses, /hooks/mg/generic\n"
	if out := r.mustRun("smarthost", "show", "mg"); !strings.Contains(out, first+" (not set)\n") || !strings.Contains(out, also) {
		t.Fatalf("show:\n%s", out)
	}
	file := testutil.WriteFile(t, t.TempDir(), "mg.key", []byte("key-0123456789abcdef-signing\n"))
	if out := r.mustRun("smarthost", "update", "mg", "--webhook-signing-key-file", file); !strings.Contains(out, first+" (set)\n") || !strings.Contains(out, also) {
		t.Fatalf("update:\n%s", out)
	}
	// Without a preset, the generic bridge's path comes first.
	r.AddSmarthost(t, "plain")
	if out := r.mustRun("smarthost", "show", "plain"); !strings.Contains(out, "give the provider /hooks/plain/generic") ||
		!strings.Contains(out, "no preset names a provider") || !strings.Contains(out, "generic_secret (not set)") {
		t.Fatalf("show plain:\n%s", out)
	}
	if out := r.mustRun("smarthost", "show", "--json", "mg"); strings.Contains(out, "Webhook:") {
		t.Fatalf("show --json prints the human lines:\n%s", out)
	}
}
