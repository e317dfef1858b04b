package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadCfg(t *testing.T, text string) (Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte(text), 0o600)
	return Load(p)
}

// The embedded defaults capture; a file that configures the default route
// without naming a mode sends over smtp, as every config did before.
func TestCaptureIsTheEmbeddedDefault(t *testing.T) {
	cfg, err := Load("")
	if err != nil || !cfg.Capture() {
		t.Fatalf("embedded defaults: capture %v, err %v; want capture", cfg.Capture(), err)
	}
	cfg, err = loadCfg(t, "data_dir = \"d\"\n[admin]\nlisten = \"127.0.0.1:9\"")
	if err != nil || !cfg.Capture() {
		t.Fatalf("config without [default_route]: capture %v, err %v; want capture", cfg.Capture(), err)
	}
	cfg, err = loadCfg(t, "[default_route]\nhost = \"smtp.example.com\"")
	if err != nil || cfg.Capture() || cfg.DefaultRoute.Mode != "smtp" {
		t.Fatalf("config with a default_route host: mode %q, err %v; want smtp", cfg.DefaultRoute.Mode, err)
	}
}

// Capture where the relay looks like production is refused with the keys
// to change, unless allow_capture_in_production says so.
func TestCaptureRefusedInProduction(t *testing.T) {
	for text, want := range map[string]string{
		"[submission]\nimplicit_tls = \"0.0.0.0:465\"":                           `submission.implicit_tls = "0.0.0.0:465"`,
		"[admin]\nlisten = \"192.0.2.1:8025\"":                                   `admin.listen = "192.0.2.1:8025"`,
		"hostname = \"r.example.com\"\n[acme]\nenabled = true":                   "acme.enabled",
		"[default_route]\nmode = \"capture\"\n[submission]\nstarttls = \":587\"": `submission.starttls = ":587"`,
	} {
		_, err := loadCfg(t, text)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "allow_capture_in_production") ||
			!strings.Contains(err.Error(), "default_route.mode") {
			t.Errorf("config %q: got %v, want an error naming default_route.mode, %s and allow_capture_in_production", text, err, want)
		}
		if _, err := loadCfg(t, "allow_capture_in_production = true\n"+text); err != nil {
			t.Errorf("config %q with the override: %v", text, err)
		}
	}
	if _, err := loadCfg(t, "[default_route]\nmode = \"mirror\""); err == nil || !strings.Contains(err.Error(), "default_route.mode") {
		t.Errorf("unknown mode: %v", err)
	}
}
