package admin

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"outbound/provider"
	"outbound/providerhooks"
	"outbound/smarthost"
)

// The secrets a smarthost's provider signs its event callbacks with
// (package providerhooks), kept sealed by package smarthost and never
// answered whole: GET shows them masked, PUT sets them.

// WebhookSecretsView is a smarthost's webhook secrets as the API shows
// them: each set secret's name with its value masked ("****xyz789"), the
// path of the webhook listener ([provider_webhooks] listen) to give this
// smarthost's provider, and every path the listener answers for it.
type WebhookSecretsView struct {
	Smarthost string            `json:"smarthost"`
	Secrets   map[string]string `json:"secrets"`
	// Provider is the path element to give the smarthost's provider:
	// that of the preset it was made from, else of the preset whose host
	// it connects to, else "generic" (a bridge of the operator's).
	Provider string `json:"provider"`
	// ProviderFrom says how Provider was chosen: "preset mailgun-eu",
	// "host smtp.mailgun.org", or "" when no preset names the provider.
	ProviderFrom string `json:"provider_from,omitempty"`
	// Path is Paths[Provider], the one to give the provider.
	Path string `json:"path"`
	// Needs are the secrets Path verifies requests with.
	Needs []string `json:"needs"`
	// Paths maps each provider to its path on the webhook listener. The
	// others than Path are answered too (a smarthost may take events in
	// another format, e.g. through a bridge), with their own secrets.
	Paths map[string]string `json:"paths"`
}

// webhookNeeds are the secrets each webhook path verifies with.
var webhookNeeds = map[string][]string{
	"mailgun":  {"mailgun_signing_key"},
	"sendgrid": {"sendgrid_public_key"},
	"postmark": {"postmark_user", "postmark_password"},
	"ses":      {"sns_topic_arn"},
	"generic":  {"generic_secret"},
}

// webhookProvider returns the webhook path element for h's provider and
// how it was found, the way SPF finds its include: h's preset, else the
// preset of its host, else the generic bridge.
func webhookProvider(h *smarthost.Smarthost) (path, from string) {
	if h.Preset != "" {
		if p, err := provider.Lookup(h.Preset); err == nil {
			return p.WebhookPath(), "preset " + p.Name
		}
	}
	if p, ok := provider.ForHost(h.Host); ok {
		return p.WebhookPath(), "host " + p.Host
	}
	return provider.GenericWebhook, ""
}

func (a *api) registerWebhookSecrets(mux *http.ServeMux) {
	mux.Handle("GET /api/smarthosts/{name}/webhook-secrets", a.authed(a.showWebhookSecrets))
	mux.Handle("PUT /api/smarthosts/{name}/webhook-secrets", a.authed(a.setWebhookSecrets))
}

func (a *api) webhookSecretsView(name string) (*WebhookSecretsView, error) {
	h, err := a.Smarthosts.Get(name)
	if err != nil {
		return nil, shError(err)
	}
	masked, err := a.Smarthosts.MaskedWebhookSecrets(h)
	if err != nil {
		return nil, err
	}
	v := &WebhookSecretsView{Smarthost: name, Secrets: masked, Paths: map[string]string{}}
	for _, p := range provider.WebhookProviders() {
		v.Paths[p] = "/hooks/" + url.PathEscape(name) + "/" + p
	}
	v.Provider, v.ProviderFrom = webhookProvider(h)
	v.Path, v.Needs = v.Paths[v.Provider], webhookNeeds[v.Provider]
	return v, nil
}

func (a *api) showWebhookSecrets(w http.ResponseWriter, r *http.Request) error {
	v, err := a.webhookSecretsView(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// setWebhookSecrets takes a JSON object of secrets by name (see
// providerhooks.SecretNames): each given one is set, "" removes it, the
// others are kept. It answers the masked view.
func (a *api) setWebhookSecrets(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var set map[string]string
	if err := decode(r, &set); err != nil {
		return err
	}
	names := providerhooks.SecretNames()
	for k := range set {
		if !slices.Contains(names, k) {
			return badRequest("unknown webhook secret %q: want %s", k, strings.Join(names, ", "))
		}
	}
	// What the smarthost would have afterwards must make sense.
	cur, err := a.Smarthosts.WebhookSecrets(name)
	if err != nil {
		return shError(err)
	}
	for k, v := range set {
		cur[k] = v
	}
	if err := providerhooks.SecretsFromMap(cur).Validate(); err != nil {
		return badRequest("%v", err)
	}
	if err := a.Smarthosts.SetWebhookSecrets(name, set); err != nil {
		return shError(err)
	}
	v, err := a.webhookSecretsView(name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// WebhookSecrets is GET /api/smarthosts/{name}/webhook-secrets.
func (c *Client) WebhookSecrets(smarthost string) (*WebhookSecretsView, error) {
	return get[WebhookSecretsView](c, "GET", smarthostPath(smarthost)+"/webhook-secrets", nil)
}

// SetWebhookSecrets is PUT /api/smarthosts/{name}/webhook-secrets: each
// secret in set is set, "" removes it.
func (c *Client) SetWebhookSecrets(smarthost string, set map[string]string) (*WebhookSecretsView, error) {
	return get[WebhookSecretsView](c, "PUT", smarthostPath(smarthost)+"/webhook-secrets", set)
}
