package provider

import (
	"slices"
	"strings"
	"testing"
)

func TestEveryPresetIsComplete(t *testing.T) {
	for _, p := range All() {
		if p.Name == "" || p.Title == "" || p.Host == "" || p.SPFInclude == "" {
			t.Errorf("%q: name, title, host and SPF include are required: %+v", p.Name, p)
		}
		if p.Name != strings.ToLower(p.Name) || strings.ContainsAny(p.Name, " _.") {
			t.Errorf("%q: names are lowercase words joined by dashes", p.Name)
		}
		if p.Username == "" && p.UsernameHint == "" {
			t.Errorf("%q: without a fixed username, a hint is required", p.Name)
		}
		seen := map[int]bool{}
		for _, pm := range p.Ports() {
			if pm.Port <= 0 || pm.Port > 65535 {
				t.Errorf("%q: port %d out of range", p.Name, pm.Port)
			}
			if pm.TLS != Implicit && pm.TLS != StartTLS {
				t.Errorf("%q: port %d has TLS mode %q; presets never connect in the clear", p.Name, pm.Port, pm.TLS)
			}
			if seen[pm.Port] {
				t.Errorf("%q: port %d listed twice", p.Name, pm.Port)
			}
			seen[pm.Port] = true
		}
		if p.Port == 465 && p.TLS != Implicit || p.Port == 587 && p.TLS != StartTLS {
			t.Errorf("%q: port %d with %q", p.Name, p.Port, p.TLS)
		}
		if strings.Contains(p.SPFInclude, ":") || strings.HasSuffix(p.SPFInclude, ".") {
			t.Errorf("%q: SPF include %q is a bare domain, without include: or a final dot", p.Name, p.SPFInclude)
		}
	}
}

func TestNamesAndHostsAreUniqueAndSorted(t *testing.T) {
	names, hosts := map[string]bool{}, map[string]bool{}
	all := All()
	for _, p := range all {
		if names[p.Name] {
			t.Errorf("name %q used twice", p.Name)
		}
		if hosts[p.Host] {
			t.Errorf("host %q used twice; ForHost could not tell them apart", p.Host)
		}
		names[p.Name], hosts[p.Host] = true, true
	}
	if !slices.IsSortedFunc(all, func(a, b Preset) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("All is not sorted by name: %v", Names())
	}
}

func TestKnownProviderFacts(t *testing.T) {
	for _, want := range []struct {
		name, host string
		port       int
		tls        TLSMode
		username   string
		include    string
	}{
		{"mailgun-us", "smtp.mailgun.org", 587, StartTLS, "", "mailgun.org"},
		{"mailgun-eu", "smtp.eu.mailgun.org", 587, StartTLS, "", "_spf.eu.mailgun.org"},
		{"sendgrid", "smtp.sendgrid.net", 587, StartTLS, "apikey", "sendgrid.net"},
		{"ses-us-east-1", "email-smtp.us-east-1.amazonaws.com", 587, StartTLS, "", "amazonses.com"},
		{"ses-eu-west-1", "email-smtp.eu-west-1.amazonaws.com", 587, StartTLS, "", "amazonses.com"},
		{"postmark", "smtp.postmarkapp.com", 587, StartTLS, "", "spf.mtasv.net"},
		{"gmail", "smtp.gmail.com", 587, StartTLS, "", "_spf.google.com"},
		{"brevo", "smtp-relay.brevo.com", 587, StartTLS, "", "spf.brevo.com"},
		{"mailjet", "in-v3.mailjet.com", 587, StartTLS, "", "spf.mailjet.com"},
		{"mailchimp-transactional", "smtp.mandrillapp.com", 587, StartTLS, "", "spf.mandrillapp.com"},
		{"resend", "smtp.resend.com", 465, Implicit, "resend", "amazonses.com"},
		{"loopia", "mailcluster.loopia.se", 587, StartTLS, "", "kundspf.loopia.se"},
	} {
		p, err := Lookup(want.name)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if p.Host != want.host || p.Port != want.port || p.TLS != want.tls || p.Username != want.username || p.SPFInclude != want.include {
			t.Errorf("%s = %s:%d %s user %q include %q; want %s:%d %s user %q include %q", want.name,
				p.Host, p.Port, p.TLS, p.Username, p.SPFInclude, want.host, want.port, want.tls, want.username, want.include)
		}
	}
}

func TestPostmarkHasNoImplicitTLSPort(t *testing.T) {
	p, _ := Lookup("postmark")
	for _, pm := range p.Ports() {
		if pm.TLS == Implicit {
			t.Errorf("postmark lists %d %s; Postmark has no implicit-TLS port", pm.Port, pm.TLS)
		}
	}
}

func TestLookupIgnoresCaseAndSpaces(t *testing.T) {
	p, err := Lookup("  Mailgun-EU ")
	if err != nil || p.Title != "Mailgun EU" {
		t.Errorf("Lookup = %+v, %v", p, err)
	}
}

func TestLookupOfUnknownNameListsValidNames(t *testing.T) {
	_, err := Lookup("mailgun")
	if err == nil {
		t.Fatal("no error for an unknown preset")
	}
	msg := err.Error()
	if !strings.Contains(msg, `"mailgun"`) {
		t.Errorf("error %q does not repeat the name asked for", msg)
	}
	for _, name := range Names() {
		if !strings.Contains(msg, name) {
			t.Errorf("error %q does not list %q", msg, name)
		}
	}
}

func TestForHostFindsPresetByHost(t *testing.T) {
	p, ok := ForHost("SMTP.EU.Mailgun.org.")
	if !ok || p.Name != "mailgun-eu" {
		t.Errorf("ForHost = %+v, %v; want mailgun-eu", p, ok)
	}
	if _, ok := ForHost("smtp.example.com"); ok {
		t.Error("ForHost matched an unknown host")
	}
}

func TestAllReturnsACopy(t *testing.T) {
	a := All()
	a[0].Host = "changed.example"
	a[0].AltPorts = append(a[0].AltPorts[:0], PortMode{1, None})
	b := All()
	if b[0].Host == "changed.example" || (len(b[0].AltPorts) > 0 && b[0].AltPorts[0].Port == 1) {
		t.Error("changing All's result changed the table")
	}
}

// Amazon SES replaces Message-ID and Date (its documentation says not to
// DKIM-sign them); the presets that do not are declared to rewrite nothing.
func TestSESRewritesMessageIDAndDate(t *testing.T) {
	for _, p := range All() {
		want := 0
		if strings.HasPrefix(p.Name, "ses-") {
			want = 2
			if p.Rewrites[0] != "Message-ID" || p.Rewrites[1] != "Date" {
				t.Errorf("%s rewrites %v", p.Name, p.Rewrites)
			}
		}
		if len(p.Rewrites) != want {
			t.Errorf("%s rewrites %v", p.Name, p.Rewrites)
		}
	}
}

// Each preset says which webhook path its provider's event callbacks go
// to: its own format where the relay reads one, else the generic bridge.
func TestPresetsNameTheirWebhook(t *testing.T) {
	want := map[string]string{"mailgun-us": "mailgun", "mailgun-eu": "mailgun", "sendgrid": "sendgrid", "postmark": "postmark",
		"gmail": "generic", "brevo": "generic", "mailjet": "generic", "mailchimp-transactional": "generic", "resend": "generic", "loopia": "generic"}
	for _, p := range All() {
		if p.Webhook == GenericWebhook || (p.Webhook != "" && !slices.Contains(WebhookProviders(), p.Webhook)) {
			t.Errorf("%s: Webhook %q is none of %v (leave it empty for the generic bridge)", p.Name, p.Webhook, WebhookProviders())
		}
		w, ok := want[p.Name]
		if strings.HasPrefix(p.Name, "ses-") {
			w, ok = "ses", true
		}
		if !ok {
			t.Errorf("%s: no expected webhook path in this test; add one", p.Name)
		} else if got := p.WebhookPath(); got != w {
			t.Errorf("%s: WebhookPath = %q, want %q", p.Name, got, w)
		}
	}
}
