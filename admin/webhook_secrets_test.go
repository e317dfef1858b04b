package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"outbound/internal/admintest"
	"outbound/smarthost"
)

// Webhook secrets are set through the API, stored sealed, answered only
// masked, validated, and out of a sender's reach.
func TestWebhookSecretsSetMaskedAndOperatorsOnly(t *testing.T) {
	e := admintest.New(t)
	if code, body := e.Call(t, "POST", "/api/smarthosts", admintest.Token, e.SmarthostRequest("mg")); code != http.StatusCreated {
		t.Fatalf("add: %d %s", code, body)
	}
	const key = "key-0123456789abcdef-signing"
	v, err := e.Client.SetWebhookSecrets("mg", map[string]string{"mailgun_signing_key": key})
	if err != nil {
		t.Fatal(err)
	}
	if v.Secrets["mailgun_signing_key"] != smarthost.Mask(key) || v.Paths["mailgun"] != "/hooks/mg/mailgun" {
		t.Fatalf("view %+v", v)
	}
	code, body := e.Call(t, "GET", "/api/smarthosts/mg/webhook-secrets", admintest.Token, nil)
	if code != http.StatusOK || strings.Contains(body, key) || !strings.Contains(body, smarthost.Mask(key)) {
		t.Fatalf("GET: %d %s, want the key masked", code, body)
	}
	if got, _ := e.Smarthosts.WebhookSecrets("mg"); got["mailgun_signing_key"] != key {
		t.Fatalf("stored %v", got)
	}
	for _, bad := range []map[string]string{{"mailgun_key": "x"}, {"sendgrid_public_key": "not a key"}, {"postmark_user": "only-user"}} {
		if code, body := e.Call(t, "PUT", "/api/smarthosts/mg/webhook-secrets", admintest.Token, bad); code != http.StatusBadRequest {
			t.Errorf("PUT %v: %d %s, want 400", bad, code, body)
		}
	}
	if code, _ := e.Call(t, "GET", "/api/smarthosts/nosuch/webhook-secrets", admintest.Token, nil); code != http.StatusNotFound {
		t.Errorf("unknown smarthost: %d, want 404", code)
	}
	if code, _ := actingCall(t, e, "alice@example.com", "PUT", "/api/smarthosts/mg/webhook-secrets", map[string]string{"mailgun_signing_key": "mine"}); code != http.StatusForbidden {
		t.Errorf("a sender set webhook secrets: %d, want 403", code)
	}
}
