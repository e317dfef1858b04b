// Package provider knows the big upstream mail providers: for each, the
// SMTP host, the ports and TLS modes it accepts, its username convention
// and the SPF include its customers publish. The presets are one table in
// this file; to add a provider, add a row to table and check its facts
// against the provider's own documentation.
package provider

import (
	"fmt"
	"slices"
	"strings"
)

// TLSMode is how a connection to an upstream is encrypted.
type TLSMode string

// The TLS modes.
const (
	// Implicit is TLS from the first byte ("SMTPS", "SSL"), usually port 465.
	Implicit TLSMode = "implicit"
	// StartTLS upgrades a plain connection with the STARTTLS command,
	// usually port 587.
	StartTLS TLSMode = "starttls"
	// None is no encryption, for local test upstreams only.
	None TLSMode = "none"
)

// PortMode is a port and the TLS mode spoken on it.
type PortMode struct {
	Port int
	TLS  TLSMode
}

// Preset describes one upstream provider.
type Preset struct {
	// Name is the key used on the CLI and in the config, e.g. "mailgun-eu".
	Name string
	// Title names the provider for people, e.g. "Mailgun EU".
	Title string
	// Host is the SMTP submission host.
	Host string
	// Port and TLS are the recommended way to connect.
	Port int
	TLS  TLSMode
	// AltPorts are the other port and TLS mode combinations the provider
	// accepts, e.g. when a network blocks the recommended port.
	AltPorts []PortMode
	// Username is the fixed SMTP username, when the provider has one
	// ("apikey" for SendGrid), else "".
	Username string
	// UsernameHint tells the user what to enter as username and password
	// when Username is "".
	UsernameHint string
	// SPFInclude is the domain senders add to their SPF record as
	// include:<SPFInclude> to authorize the provider.
	SPFInclude string
	// SPFNote says where the include belongs when it is not on the From
	// domain itself (Resend and SES with a custom MAIL FROM), else "".
	SPFNote string
	// Rewrites are the header fields the provider replaces on every
	// message (Amazon SES: Message-ID and Date). A DKIM signature must not
	// cover them, or the provider's own change breaks it; SES documents
	// that they must not be signed.
	Rewrites []string
	// Webhook is the path of the relay's provider webhook listener
	// (package providerhooks) whose format and signature are this
	// provider's own: "mailgun", "sendgrid", "postmark" or "ses". Empty for
	// the providers the relay has no reader for: their events reach it
	// through a bridge of the operator's on "generic" (see WebhookPath).
	Webhook string
}

// GenericWebhook is the webhook path for events posted in the relay's own
// signed format, by a bridge from any provider.
const GenericWebhook = "generic"

// WebhookProviders returns the paths of the provider webhook listener, one
// per format it reads, in the order they are listed to users.
func WebhookProviders() []string {
	return []string{"mailgun", "sendgrid", "postmark", "ses", GenericWebhook}
}

// WebhookPath returns the webhook path to give this provider: Webhook,
// else GenericWebhook.
func (p Preset) WebhookPath() string {
	if p.Webhook == "" {
		return GenericWebhook
	}
	return p.Webhook
}

// table is the one list of presets, from each provider's documentation:
//
//   - Mailgun: smtp.mailgun.org / smtp.eu.mailgun.org; 25, 587, 2525
//     STARTTLS and 465 TLS; login per sending domain; include mailgun.org
//     (which includes the EU record _spf.eu.mailgun.org).
//   - SendGrid (Twilio docs): smtp.sendgrid.net, user "apikey"; 25, 587,
//     2525 STARTTLS, 465 TLS; include sendgrid.net.
//   - Amazon SES: email-smtp.<region>.amazonaws.com; STARTTLS on 25, 587,
//     2587, TLS wrapper on 465, 2465; include amazonses.com. SES replaces
//     Message-ID and Date and asks that DKIM signatures leave them out
//     (and Return-Path, Bounces-To, which are never signed here).
//   - Postmark: smtp.postmarkapp.com; 25, 2525, 587 STARTTLS, no implicit
//     TLS port; Server API Token as user and password; include spf.mtasv.net.
//   - Gmail: smtp.gmail.com; 587 STARTTLS, 465 TLS; app password;
//     include _spf.google.com.
//   - Brevo: smtp-relay.brevo.com; 587, 2525, and 465 with TLS; SMTP key;
//     include spf.brevo.com (older accounts: spf.sendinblue.com).
//   - Mailjet: in-v3.mailjet.com; 587 STARTTLS, 465 TLS, 25; API key and
//     secret key; include spf.mailjet.com.
//   - Mailchimp Transactional: smtp.mandrillapp.com; 25, 587, 2525
//     (STARTTLS), 465 SSL; any username, API key as password;
//     include spf.mandrillapp.com.
//   - Resend: smtp.resend.com, user "resend"; 465, 2465 TLS and 25, 587,
//     2587 STARTTLS, 465 recommended; SPF "include:amazonses.com" on the
//     "send." subdomain.
//   - Loopia: mailcluster.loopia.se; include kundspf.loopia.se.
//
// Webhook is set for the four providers whose event callbacks package
// providerhooks verifies and reads (Mailgun, SendGrid, Postmark, and SES
// through SNS); the others post nothing the relay reads as it is.
func table() []Preset {
	presets := []Preset{
		{
			Name: "mailgun-us", Title: "Mailgun US",
			Host: "smtp.mailgun.org", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{465, Implicit}, {2525, StartTLS}, {25, StartTLS}},
			UsernameHint: "your Mailgun SMTP login, e.g. postmaster@mg.yourdomain.com (per sending domain)",
			SPFInclude:   "mailgun.org",
			Webhook:      "mailgun",
		},
		{
			Name: "mailgun-eu", Title: "Mailgun EU",
			Host: "smtp.eu.mailgun.org", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{465, Implicit}, {2525, StartTLS}, {25, StartTLS}},
			UsernameHint: "your Mailgun SMTP login, e.g. postmaster@mg.yourdomain.com (per sending domain)",
			SPFInclude:   "_spf.eu.mailgun.org",
			Webhook:      "mailgun",
		},
		{
			Name: "sendgrid", Title: "SendGrid",
			Host: "smtp.sendgrid.net", Port: 587, TLS: StartTLS,
			AltPorts:   []PortMode{{465, Implicit}, {2525, StartTLS}, {25, StartTLS}},
			Username:   "apikey",
			SPFInclude: "sendgrid.net",
			Webhook:    "sendgrid",
		},
		{
			Name: "postmark", Title: "Postmark",
			Host: "smtp.postmarkapp.com", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{2525, StartTLS}, {25, StartTLS}},
			UsernameHint: "your Postmark Server API Token, as both username and password",
			SPFInclude:   "spf.mtasv.net",
			Webhook:      "postmark",
		},
		{
			Name: "gmail", Title: "Gmail / Google Workspace",
			Host: "smtp.gmail.com", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{465, Implicit}},
			UsernameHint: "your full Gmail or Google Workspace address; the password is an app password",
			SPFInclude:   "_spf.google.com",
		},
		{
			Name: "brevo", Title: "Brevo",
			Host: "smtp-relay.brevo.com", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{465, Implicit}, {2525, StartTLS}},
			UsernameHint: "the SMTP login shown under SMTP & API in Brevo; the password is an SMTP key, not an API key",
			SPFInclude:   "spf.brevo.com",
		},
		{
			Name: "mailjet", Title: "Mailjet",
			Host: "in-v3.mailjet.com", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{465, Implicit}, {25, StartTLS}},
			UsernameHint: "your Mailjet API key; the password is its secret key",
			SPFInclude:   "spf.mailjet.com",
		},
		{
			Name: "mailchimp-transactional", Title: "Mailchimp Transactional (Mandrill)",
			Host: "smtp.mandrillapp.com", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{465, Implicit}, {2525, StartTLS}, {25, StartTLS}},
			UsernameHint: "any name (Mailchimp suggests your account's primary contact email); the password is a Transactional API key",
			SPFInclude:   "spf.mandrillapp.com",
		},
		{
			Name: "resend", Title: "Resend",
			Host: "smtp.resend.com", Port: 465, TLS: Implicit,
			AltPorts:   []PortMode{{587, StartTLS}, {2465, Implicit}, {2587, StartTLS}, {25, StartTLS}},
			Username:   "resend",
			SPFInclude: "amazonses.com",
			SPFNote:    `Resend asks for the include on its return-path subdomain ("send." by default), not on the From domain`,
		},
		{
			Name: "loopia", Title: "Loopia",
			Host: "mailcluster.loopia.se", Port: 587, TLS: StartTLS,
			AltPorts:     []PortMode{{465, Implicit}},
			UsernameHint: "your full Loopia email address and its password",
			SPFInclude:   "kundspf.loopia.se",
		},
	}
	for _, r := range []struct{ region, title string }{
		{"us-east-1", "US East (N. Virginia)"},
		{"us-east-2", "US East (Ohio)"},
		{"us-west-2", "US West (Oregon)"},
		{"eu-west-1", "Europe (Ireland)"},
		{"eu-central-1", "Europe (Frankfurt)"},
		{"eu-north-1", "Europe (Stockholm)"},
	} {
		presets = append(presets, Preset{
			Name:         "ses-" + r.region,
			Title:        "Amazon SES " + r.title,
			Host:         "email-smtp." + r.region + ".amazonaws.com",
			Port:         587,
			TLS:          StartTLS,
			AltPorts:     []PortMode{{465, Implicit}, {2587, StartTLS}, {2465, Implicit}, {25, StartTLS}},
			UsernameHint: "the SMTP username of SES SMTP credentials for this region (not an AWS access key ID)",
			SPFInclude:   "amazonses.com",
			SPFNote:      "SES sends from its own MAIL FROM domain unless you set a custom one; the include belongs on that custom MAIL FROM domain",
			Rewrites:     []string{"Message-ID", "Date"},
			Webhook:      "ses",
		})
	}
	slices.SortFunc(presets, func(a, b Preset) int { return strings.Compare(a.Name, b.Name) })
	return presets
}

// All returns every preset, sorted by Name. The caller may modify the
// result.
func All() []Preset { return table() }

// Names returns the preset names, sorted.
func Names() []string {
	all := table()
	names := make([]string, len(all))
	for i, p := range all {
		names[i] = p.Name
	}
	return names
}

// Lookup returns the preset called name (case and surrounding spaces
// ignored). The error for an unknown name lists the valid ones.
func Lookup(name string) (Preset, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	for _, p := range table() {
		if p.Name == key {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("unknown provider preset %q; valid presets: %s", name, strings.Join(Names(), ", "))
}

// ForHost returns the preset whose Host is host (case and a final dot
// ignored), to name an upstream in messages; ok is false when no preset
// has that host.
func ForHost(host string) (p Preset, ok bool) {
	host = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(host), "."))
	for _, p := range table() {
		if p.Host == host {
			return p, true
		}
	}
	return Preset{}, false
}

// Ports returns the recommended port and mode first, then AltPorts.
func (p Preset) Ports() []PortMode {
	return append([]PortMode{{p.Port, p.TLS}}, p.AltPorts...)
}
