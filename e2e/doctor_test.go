package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"outbound/internal/testutil"
)

// TestDoctorReportsSelfSignedCertificate: against a running relay with
// the self-signed certificate it generates when no [tls] cert is
// configured, `outbound doctor --json` fails the certificate check of
// both listeners with the fix to configure one, passes what is sound
// (the listeners' greeting and TLS, the default route's connection test,
// data_dir's mode, the admin listener on loopback) and exits 1; the
// human form prints the same with ✗ and the fix.
func TestDoctorReportsSelfSignedCertificate(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	delete(r.cfg, "tls")
	r.start()

	res := r.cli("", "doctor", "--json", "--min-free", "1MiB")
	if res.Code != 1 {
		t.Fatalf("doctor with a self-signed certificate exits %d, want 1: %s", res.Code, res)
	}
	var results []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
		Fix    string `json:"fix"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &results); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, res)
	}
	byName := map[string]bool{}
	for _, c := range results {
		byName[c.Name] = c.OK
		if strings.HasPrefix(c.Name, "certificate on ") &&
			(c.OK || !strings.Contains(c.Detail, "self-signed") || c.Fix != "configure [tls] cert/key or [acme]") {
			t.Errorf("certificate check: %+v, want a self-signed failure with the fix to configure one", c)
		}
	}
	for _, want := range []string{
		"certificate on " + r.ImplicitAddr, "certificate on " + r.StartTLSAddr,
		"listener " + r.ImplicitAddr + " (implicit TLS)", "listener " + r.StartTLSAddr + " (STARTTLS)",
		"default route", "certificate renewal", "permissions of " + r.DataDir, "admin listener " + r.AdminAddr + " not in plain HTTP",
	} {
		ok, found := byName[want]
		if !found {
			t.Errorf("no check %q in %s", want, res.Stdout)
			continue
		}
		if !strings.HasPrefix(want, "certificate") && !ok {
			t.Errorf("check %q failed on a sound part: %s", want, res.Stdout)
		}
	}

	human := r.cli("", "doctor", "--min-free", "1MiB")
	if human.Code != 1 || !strings.Contains(human.Stdout, "✗ certificate on "+r.StartTLSAddr) ||
		!strings.Contains(human.Stdout, "    fix: configure [tls] cert/key or [acme]") ||
		!strings.Contains(human.Stdout, "✓ default route") {
		t.Errorf("doctor: %s", human)
	}
}

// TestDoctorWorldReadableTokenAndRelayDown: a world-readable admin token
// is reported with the chmod to run; with the relay stopped, doctor says
// the admin API is out of reach (once, leaving out the checks that need
// it) and the listeners do not answer, and exits 1.
func TestDoctorWorldReadableTokenAndRelayDown(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.start()
	token := filepath.Join(r.DataDir, "admin.token")
	if err := os.Chmod(token, 0o644); err != nil {
		t.Fatal(err)
	}
	res := r.cli("", "doctor", "--min-free", "1MiB")
	if res.Code != 1 || !strings.Contains(res.Stdout, "✗ permissions of "+token) ||
		!strings.Contains(res.Stdout, "    fix: chmod 0600 "+token) {
		t.Errorf("doctor with a world-readable token: %s", res)
	}

	r.stop()
	res = r.cli("", "doctor", "--min-free", "1MiB")
	if res.Code != 1 || strings.Count(res.Stdout, "✗ admin API:") != 1 ||
		!strings.Contains(res.Stdout, "✗ listener "+r.StartTLSAddr) || strings.Contains(res.Stdout, "✗ smarthost ") || strings.Contains(res.Stdout, "SPF of ") {
		t.Errorf("doctor with the relay stopped: %s", res)
	}
}
