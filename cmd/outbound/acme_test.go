package main

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"outbound/config"
)

// Under [acme] the CLI reaches an HTTPS admin listener trusting the
// system's roots for the relay's name: there is no certificate file of
// its own to pin.
func TestCLITrustsTheACMECertificateByName(t *testing.T) {
	cfg := config.Default()
	cfg.Hostname, cfg.DataDir = "relay.example.com", t.TempDir()
	cfg.ACME.Enabled = true
	cfg.Admin.Listen = "0.0.0.0:8025"
	url, c, err := adminEndpoint(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := c.Transport.(*http.Transport)
	if url != "https://127.0.0.1:8025" || !ok || tr.TLSClientConfig.ServerName != "relay.example.com" || tr.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("got %s with %+v", url, c.Transport)
	}
}

// GET /api/tls and the expiry gauge describe the certificate from files
// too, and a failed SIGHUP reload is reported until one succeeds.
func TestCertificateStatusFromFiles(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	c, err := loadListenerCert(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st := c.status()
	if st.Source != "self-signed" || st.NotAfter.IsZero() || len(st.Names) == 0 || st.LastError != "" {
		t.Fatalf("self-signed: %+v", st)
	}
	if c.expiry() != float64(st.NotAfter.Unix()) {
		t.Errorf("expiry %v, want %v", c.expiry(), st.NotAfter.Unix())
	}

	cert, key := filepath.Join(cfg.DataDir, "tls", "cert.pem"), filepath.Join(cfg.DataDir, "tls", "key.pem")
	c.cfg.TLS.Cert, c.cfg.TLS.Key = cert, key
	if c.status().Source != "file" {
		t.Errorf("source %q, want file", c.status().Source)
	}
	os.WriteFile(key, []byte("not a key"), 0o600)
	if _, err := c.reload(); err == nil {
		t.Fatal("reload of a broken key succeeded")
	}
	if st := c.status(); st.LastError == "" || st.NotAfter.IsZero() {
		t.Errorf("after a failed reload: %+v", st)
	}
}
