package e2e

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestUnknownConfigKeyRefusedAtStart: `outbound serve` with a misspelt key,
// or with a key whose value is wrong, exits non-zero at once with a message
// that names the key, and opens no listener.
func TestUnknownConfigKeyRefusedAtStart(t *testing.T) {
	cases := []struct {
		name                string
		section, key, value string
		want                []string // all in stderr
	}{
		{"unknown top-level key", "", "hostnme", q("relay.test"), []string{"unknown key", "hostnme"}},
		{"unknown key in a section", "submission", "implicit_tsl", q("127.0.0.1:2465"), []string{"unknown key", "submission.implicit_tsl"}},
		{"unknown section", "delivry", "workers", "4", []string{"unknown key", "delivry"}},
		{"workers zero", "delivery", "workers", "0", []string{"delivery.workers"}},
		{"bad tls mode", "default_route", "tls", q("ssl"), []string{"default_route", "tls", "ssl"}},
		{"tls none off loopback", "default_route", "host", q("smtp.example.com"), []string{"default_route", "none"}},
		{"bad duration", "retry", "max_lifetime", q("5 days"), []string{"max_lifetime", "5 days"}},
		{"bad duration in a list", "retry", "schedule", `["1m", "soon"]`, []string{"schedule", "soon"}},
		{"wrong type", "submission", "max_recipients", q("ten"), []string{"max_recipients"}},
		{"bad log level", "log", "level", q("verbose"), []string{"log.level", "verbose"}},
		{"bad listen address", "admin", "listen", q("8025"), []string{"admin.listen", "8025"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRelay(t, "127.0.0.1:1")
			r.cfg.set(c.section, c.key, c.value)
			if err := os.WriteFile(r.ConfigPath, []byte(r.cfg.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			res := runBinary(t, "", "serve", "-config", r.ConfigPath)
			if res.Code == 0 {
				t.Fatalf("serve with %s.%s = %s exited 0, want a refusal\n%s", c.section, c.key, c.value, res)
			}
			for _, w := range c.want {
				if !strings.Contains(res.Stderr, w) {
					t.Errorf("serve with %s.%s = %s: stderr does not mention %q:\n%s", c.section, c.key, c.value, w, res.Stderr)
				}
			}
			if d := time.Since(begin); d > 10*time.Second {
				t.Errorf("refusing the config took %s", d)
			}
			if _, err := os.Stat(r.DataDir); err == nil {
				t.Errorf("serve created data_dir %s before refusing its config", r.DataDir)
			}
			for _, addr := range []string{r.ImplicitAddr, r.StartTLSAddr, r.AdminAddr} {
				if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
					c.Close()
					t.Errorf("something listens on %s after a refused start", addr)
				}
			}
			// The same diagnosis without starting: config check.
			if res := runBinary(t, "", "-config", r.ConfigPath, "config", "check"); res.Code == 0 {
				t.Errorf("config check accepted what serve refused:\n%s", res)
			}
		})
	}
}
