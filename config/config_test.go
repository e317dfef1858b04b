package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Submission.ImplicitTLS != "127.0.0.1:2465" || cfg.Submission.StartTLS != "127.0.0.1:2587" || cfg.Admin.Listen != "127.0.0.1:8025" {
		t.Fatalf("default listeners: %+v %+v", cfg.Submission, cfg.Admin)
	}
	if cfg.Retry.MaxLifetime.D() != 5*24*time.Hour || cfg.Retention.Content.D() != 30*24*time.Hour {
		t.Fatal("retry/retention defaults wrong")
	}
}

// The example file documents every key with its default value: parsing it
// must give exactly Default(), so the two cannot drift apart.
func TestExampleFileMatchesDefaults(t *testing.T) {
	data, err := os.ReadFile("../outbound.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	if err := Parse(&cfg, string(data)); err != nil {
		t.Fatal(err)
	}
	want := Default()
	// "x = []" in the file is an empty slice, nil in Default().
	if len(cfg.DNS.Servers) == 0 {
		cfg.DNS.Servers = nil
	}
	if len(cfg.DefaultRoute.SPFIPs) == 0 {
		cfg.DefaultRoute.SPFIPs = nil
	}
	if len(cfg.ACME.Names) == 0 {
		cfg.ACME.Names = nil
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("example differs from defaults:\n got %+v\nwant %+v", cfg, want)
	}
	// And it mentions every key of the schema.
	for _, key := range tomlKeys(reflect.TypeOf(Config{}), "") {
		name := key[strings.LastIndexByte(key, '.')+1:]
		if !strings.Contains(string(data), name+" ") && !strings.Contains(string(data), name+"=") {
			t.Errorf("outbound.example.toml does not document %s", key)
		}
	}
}

func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, tomlKeys(f.Type, prefix+tag+".")...)
			continue
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

func TestEveryFieldIsDocumented(t *testing.T) {
	var check func(reflect.Type)
	check = func(ty reflect.Type) {
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
				check(f.Type)
				if f.Tag.Get("doc") == "" && ty != reflect.TypeOf(Config{}) {
					t.Errorf("%s.%s has no doc tag", ty.Name(), f.Name)
				}
				continue
			}
			if f.Tag.Get("doc") == "" {
				t.Errorf("%s.%s has no doc tag", ty.Name(), f.Name)
			}
		}
	}
	check(reflect.TypeOf(Config{}))
}

func loadText(t *testing.T, text string) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte(text), 0o600)
	_, err := Load(p)
	return err
}

func TestBadInputNamesTheKey(t *testing.T) {
	for text, want := range map[string]string{
		"hostnme = \"x\"":                                              "unknown key hostnme",
		"[submission]\nmax_recipients = 0":                             "submission.max_recipients",
		"[submission]\nstarttls = \"nonsense\"":                        "submission.starttls",
		"[default_route]\ntls = \"sometimes\"":                         "default_route: tls must be",
		"[default_route]\nhost = \"smtp.example.com\"\ntls = \"none\"": "only for a loopback host",
		"[retry]\nmax_lifetime = \"5 days\"":                           "retry.max_lifetime: invalid duration",
		"[limits]\nown_smarthost_per_day = 20000":                      "exceeds the ceiling limits.max_per_day",
		"[log]\nlevel = \"loud\"":                                      "log.level",
		"[provider_webhooks]\nlisten = \"8443\"":                       "provider_webhooks.listen",
		"[provider_webhooks]\nmax_body_bytes = 10":                     "provider_webhooks.max_body_bytes",
		"[autoconfig]\nlisten = \"443\"":                               "autoconfig.listen",
		"[autoconfig]\nlink_lifetime = \"0\"":                          "autoconfig.link_lifetime",
		"[dsn]\nfrom = \"\"":                                           "dsn.from",
		"[dsn]\nfrom = \"Postmaster <postmaster@{domain}>\"":           "dsn.from",
		"[dsn]\nfallback_sender = \"bounces@{domian}\"":                "dsn.fallback_sender",
		"[tls]\ncert = \"a.pem\"":                                      "tls.cert",
		"hostname = ":                                                  "line 1",
		// send_api on the admin listener's default address, as an
		// example once showed: refused at load, not at bind.
		"[send_api]\nlisten = \"127.0.0.1:8025\"": "send_api.listen: \"127.0.0.1:8025\" is admin.listen's address too",
		"[admin]\nlisten = \"0.0.0.0:2587\"":      "admin.listen: \"0.0.0.0:2587\" is submission.starttls's address too",
	} {
		err := loadText(t, text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: got %v, want error containing %q", text, err, want)
		}
	}
}

// Listeners on different ports, or on port 0, do not clash; the same
// port does when the hosts match or one of them is every address.
func TestSameListenAddr(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:8025", "127.0.0.1:8025", true},
		{"127.0.0.1:8025", "127.0.0.1:8026", false},
		{"127.0.0.1:8025", "192.0.2.1:8025", false},
		{":8025", "127.0.0.1:8025", true},
		{"[::]:8025", "127.0.0.1:8025", true},
		{"127.0.0.1:0", "127.0.0.1:0", false},
	} {
		if got := sameListenAddr(c.a, c.b); got != c.want {
			t.Errorf("sameListenAddr(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestDurationSyntax(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "4h": 4 * time.Hour, "5d": 120 * time.Hour, "0": 0} {
		d, err := ParseDuration(in)
		if err != nil || d.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	if _, err := ParseDuration("1w"); err == nil {
		t.Error("1w accepted")
	}
}

func TestRelativePathsAreRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("data_dir = \"state\"\n"), 0o600)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != filepath.Join(dir, "state") {
		t.Fatalf("data_dir = %s", cfg.DataDir)
	}
}

// max_bytes_in_flight is 0 (automatic) or room for two messages of the
// largest size: below that, such a message would get 452 for ever.
func TestMaxBytesInFlight(t *testing.T) {
	for text, want := range map[string]string{
		"[submission]\nmax_bytes_in_flight = -1":                                   "submission.max_bytes_in_flight: must be 0 (automatic) or at least twice max_message_bytes (52428800)",
		"[submission]\nmax_bytes_in_flight = 52428799":                             "submission.max_bytes_in_flight",
		"[submission]\nmax_message_bytes = 1048576\nmax_bytes_in_flight = 1048576": "at least twice max_message_bytes (2097152), got 1048576",
	} {
		if err := loadText(t, text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: got %v, want error containing %q", text, err, want)
		}
	}
	for _, text := range []string{"", "[submission]\nmax_bytes_in_flight = 52428800", "[submission]\nmax_bytes_in_flight = 0"} {
		if err := loadText(t, text); err != nil {
			t.Errorf("config %q: %v", text, err)
		}
	}
}

// Lines of unwrapped HTML or base64 go through by default: the relay
// re-encodes what is over RFC 5322's 998 octets.
func TestDefaultLineLengthAcceptsLongLines(t *testing.T) {
	if got := Default().Submission.MaxLineLength; got < 64<<10 {
		t.Fatalf("max_line_length defaults to %d", got)
	}
}

// Senders' own SMTP servers must be public unless the operator says
// otherwise; the default is the safe one.
func TestWebAllowPrivateHosts(t *testing.T) {
	if Default().Web.AllowPrivateHosts {
		t.Fatal("private hosts are allowed by default")
	}
	cfg := Default()
	if err := Parse(&cfg, "[web]\nallow_private_hosts = true\n"); err != nil {
		t.Fatal(err)
	}
	if !cfg.Web.AllowPrivateHosts {
		t.Fatal("web.allow_private_hosts = true not read")
	}
}

func TestDSNFallbackSenderMayBeEmpty(t *testing.T) {
	if err := loadText(t, "[dsn]\nfrom = \"bounces@relay.example.com\"\nfallback_sender = \"\""); err != nil {
		t.Fatalf("a fixed from and no fallback sender: %v", err)
	}
}
