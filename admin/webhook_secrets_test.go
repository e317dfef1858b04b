package admin_test

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"outbound/internal/admintest"
	"outbound/provider"
	"outbound/providerhooks"
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

// The view names the path to give the smarthost's provider: its
// preset's, else the generic bridge's, with the secrets that path needs;
// every other path stays listed, since the listener answers them too.
func TestWebhookSecretsViewNamesTheProvidersPath(t *testing.T) {
	e := admintest.New(t)
	for _, c := range []struct{ name, preset, want, from string }{
		{"mg", "mailgun-eu", "mailgun", "preset mailgun-eu"},
		{"ses1", "ses-eu-west-1", "ses", "preset ses-eu-west-1"},
		{"pm", "postmark", "postmark", "preset postmark"},
		{"sg", "sendgrid", "sendgrid", "preset sendgrid"},
		{"gm", "gmail", "generic", "preset gmail"},
		{"own", "", "generic", ""},
	} {
		req := e.SmarthostRequest(c.name)
		req.Preset = c.preset // the rig's own host, port and TLS mode stay
		if code, body := e.Call(t, "POST", "/api/smarthosts", admintest.Token, req); code != http.StatusCreated {
			t.Fatalf("add %s: %d %s", c.name, code, body)
		}
		v, err := e.Client.WebhookSecrets(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if v.Provider != c.want || v.ProviderFrom != c.from || v.Path != "/hooks/"+c.name+"/"+c.want || len(v.Needs) == 0 {
			t.Errorf("%s: provider %q from %q, path %q, needs %v; want %q from %q", c.name, v.Provider, v.ProviderFrom, v.Path, v.Needs, c.want, c.from)
		}
		for _, n := range v.Needs {
			if !slices.Contains(providerhooks.SecretNames(), n) {
				t.Errorf("%s: needs %q, which is no webhook secret name", c.name, n)
			}
		}
		if len(v.Paths) != len(provider.WebhookProviders()) {
			t.Errorf("%s: paths %v, want every provider's", c.name, v.Paths)
		}
	}
}

// provider.WebhookProviders, which the view lists, are exactly the paths
// the webhook listener answers.
func TestWebhookProvidersAreTheListenersPaths(t *testing.T) {
	got := slices.Sorted(maps.Keys(providerhooks.Verifiers(providerhooks.Guard{})))
	if want := slices.Sorted(slices.Values(provider.WebhookProviders())); !slices.Equal(got, want) {
		t.Errorf("the listener answers %v, provider.WebhookProviders lists %v", got, want)
	}
}
