package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"outbound/admin"
	"outbound/provider"
)

// webhookFlags are smarthost update's flags for the provider's webhook
// secrets (docs/provider-webhooks.md). Secrets come from files, never from
// argv, where other users of the machine could read them; the Postmark
// user name and the SNS topic are no secrets.
type webhookFlags struct {
	// files maps a flag to the secret its file holds.
	files map[string]string
	// plain maps a flag to the value it sets as given.
	plain map[string]string
	clear *string
}

func addWebhookFlags(fs *flag.FlagSet) *webhookFlags {
	w := &webhookFlags{
		files: map[string]string{
			"webhook-signing-key-file":    "mailgun_signing_key",
			"sendgrid-public-key-file":    "sendgrid_public_key",
			"postmark-password-file":      "postmark_password",
			"generic-webhook-secret-file": "generic_secret",
		},
		plain: map[string]string{"postmark-user": "postmark_user", "sns-topic-arn": "sns_topic_arn"},
	}
	fs.String("webhook-signing-key-file", "", "file holding Mailgun's HTTP webhook signing key")
	fs.String("sendgrid-public-key-file", "", "file holding SendGrid's signed event webhook verification key (base64)")
	fs.String("postmark-user", "", "basic-auth user name in the webhook URL given to Postmark")
	fs.String("postmark-password-file", "", "file holding the basic-auth password in the webhook URL given to Postmark")
	fs.String("sns-topic-arn", "", "the SNS topic SES notifications come from (others are refused)")
	fs.String("generic-webhook-secret-file", "", "file holding the generic webhook's HMAC secret")
	w.clear = fs.String("clear-webhook-secrets", "", "comma-separated secrets to remove: "+strings.Join(webhookSecretNames(), ", "))
	return w
}

// webhookSecretNames are the names --clear-webhook-secrets takes.
func webhookSecretNames() []string {
	return []string{"mailgun_signing_key", "sendgrid_public_key", "postmark_user", "postmark_password", "sns_topic_arn", "generic_secret"}
}

// isWebhookFlag reports whether a flag of smarthost update is one of these.
func (w *webhookFlags) isWebhookFlag(name string) bool {
	_, f := w.files[name]
	_, p := w.plain[name]
	return f || p || name == "clear-webhook-secrets"
}

// collect returns the secrets the given flags set (nil when none): each
// file's content without its final line break, "" for those cleared.
func (w *webhookFlags) collect(fs *flag.FlagSet, set map[string]bool) (map[string]string, error) {
	out := map[string]string{}
	for flagName, secret := range w.files {
		if !set[flagName] {
			continue
		}
		data, err := os.ReadFile(fs.Lookup(flagName).Value.String())
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flagName, err)
		}
		v := strings.TrimRight(string(data), "\r\n")
		if v == "" {
			return nil, fmt.Errorf("--%s: the file is empty (use --clear-webhook-secrets %s to remove it)", flagName, secret)
		}
		out[secret] = v
	}
	for flagName, secret := range w.plain {
		if set[flagName] {
			out[secret] = fs.Lookup(flagName).Value.String()
		}
	}
	if *w.clear != "" {
		for _, name := range strings.Split(*w.clear, ",") {
			out[strings.TrimSpace(name)] = ""
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// setWebhookSecrets stores secrets on smarthost name and prints them masked.
func (e *cliEnv) setWebhookSecrets(name string, secrets map[string]string) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	v, err := c.SetWebhookSecrets(name, secrets)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(v.Secrets))
	for k := range v.Secrets {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(e.stdout, "webhook secrets of smarthost %s:", name)
	if len(names) == 0 {
		fmt.Fprint(e.stdout, " none")
	}
	for _, k := range names {
		fmt.Fprintf(e.stdout, " %s %s", k, v.Secrets[k])
	}
	fmt.Fprintln(e.stdout)
	printWebhookPaths(e.stdout, v)
	return nil
}

// webhookFormats names each webhook path's format for people.
var webhookFormats = map[string]string{
	"mailgun": "Mailgun", "sendgrid": "SendGrid", "postmark": "Postmark",
	"ses": "Amazon SES through SNS", "generic": "the generic format, for a bridge of your own",
}

// printWebhookPaths says which path of the provider_webhooks listener to
// give the smarthost's provider, and which secrets that path needs, then
// lists the other paths: they are answered too, each with its own secrets.
func printWebhookPaths(w io.Writer, v *admin.WebhookSecretsView) {
	why := webhookFormats[v.Provider]
	if v.ProviderFrom != "" {
		why += ", from " + v.ProviderFrom
	} else {
		why += ": no preset names a provider whose events the relay reads"
	}
	needs := make([]string, len(v.Needs))
	for i, n := range v.Needs {
		state := "not set"
		if _, ok := v.Secrets[n]; ok {
			state = "set"
		}
		needs[i] = n + " (" + state + ")"
	}
	fmt.Fprintf(w, "Webhook:     give the provider %s on the provider_webhooks listener (%s); it needs %s\n", v.Path, why, strings.Join(needs, ", "))
	var others []string
	for _, p := range provider.WebhookProviders() {
		if path, ok := v.Paths[p]; ok && p != v.Provider {
			others = append(others, path)
		}
	}
	fmt.Fprintf(w, "             also answered, with their own secrets: %s\n", strings.Join(others, ", "))
}

// showSmarthostWebhook is smarthost show's output: showSmarthost, then,
// for an SMTP smarthost, the webhook path to give its provider.
func (e *cliEnv) showSmarthostWebhook(w io.Writer, h *admin.SmarthostView) error {
	if err := showSmarthost(w, h); err != nil || h.Kind == "capture" {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	v, err := c.WebhookSecrets(h.Name)
	if err != nil {
		// The rest was shown; say why this part is missing.
		fmt.Fprintf(w, "Webhook:     (unavailable: %v)\n", err)
		return nil
	}
	printWebhookPaths(w, v)
	return nil
}

// cmpErr is err when there is one, otherwise usage.
func cmpErr(err, usage error) error {
	if err != nil {
		return err
	}
	return usage
}
