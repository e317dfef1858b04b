package config

import (
	"strings"
	"testing"
)

func TestACMEAndCertificateFilesAreMutuallyExclusive(t *testing.T) {
	err := loadText(t, "hostname = \"relay.example.com\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[acme]\nenabled = true")
	if err == nil || !strings.Contains(err.Error(), "acme.enabled") || !strings.Contains(err.Error(), "tls.cert/tls.key") {
		t.Fatalf("got %v, want an error naming both [acme] and tls.cert/tls.key", err)
	}
}

func TestACMESettingsAreChecked(t *testing.T) {
	for text, want := range map[string]string{
		"hostname = \"relay.example.com\"\n[acme]\nenabled = true\nchallenge = \"dns-01\"":                         "acme.challenge",
		"hostname = \"relay.example.com\"\n[acme]\nenabled = true\ndirectory = \"http://ca.test/dir\"":             "acme.directory",
		"hostname = \"relay.example.com\"\n[acme]\nenabled = true\nhttp_listen = \"80\"":                           "acme.http_listen",
		"hostname = \"relay.example.com\"\n[acme]\nenabled = true\nchallenge = \"tls-alpn-01\"\ntls_listen = \"\"": "acme.tls_listen",
		"[acme]\nenabled = true": "acme.names: \"localhost\"",
		"hostname = \"relay.example.com\"\n[acme]\nenabled = true\nnames = [\"127.0.0.1\"]": "acme.names",
	} {
		err := loadText(t, text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: got %v, want error containing %q", text, err, want)
		}
	}
}

func TestACMENamesDefaultToHostname(t *testing.T) {
	cfg := Default()
	cfg.Hostname = "relay.example.com"
	cfg.ACME.Enabled = true
	cfg.DefaultRoute.Mode = "smtp" // capture is refused with [acme]
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := cfg.ACMENames(); len(n) != 1 || n[0] != "relay.example.com" {
		t.Errorf("names %v, want [relay.example.com]", n)
	}
	cfg.ACME.Names = []string{"mail.example.com", "smtp.example.com"}
	if n := cfg.ACMENames(); len(n) != 2 || n[0] != "mail.example.com" {
		t.Errorf("names %v", n)
	}
}
