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
