package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"outbound/autoconfig"
	"outbound/internal/admintest"
)

func TestCLIDNSRecords(t *testing.T) {
	r := newCLIRig(t)
	r.AddUsers(t, "app@example.com")
	out := r.mustRun("dns", "records", "example.com")
	for _, want := range []string{
		`example.com.`, `IN TXT`, `"v=spf1 include:_spf.example.net ~all"`,
		"_submissions._tcp.example.com.", "0 1 465 relay.test.",
		"_submission._tcp.example.com.", "0 1 587 relay.test.",
		"autoconfig.example.com.", "autodiscover.example.com.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := r.run("", "dns", "records", "nobody.example"); err == nil || !strings.Contains(err.Error(), "no user may send from nobody.example") {
		t.Errorf("unknown domain: %v", err)
	}
}

// The link the CLI prints downloads the user's profile from the handler
// the server runs (same key, derived from the admin token).
func TestCLIAutoconfigLink(t *testing.T) {
	r := newCLIRig(t)
	r.AddUsers(t, "app@example.com")
	out := strings.TrimSpace(r.mustRun("autoconfig", "link", "app@example.com", "--base", "https://relay.test"))
	u, err := url.Parse(out)
	if err != nil || u.Host != "relay.test" || u.Path != autoconfig.ProfilePath {
		t.Fatalf("link %q: %v", out, err)
	}
	h := autoconfig.Handler(autoconfig.Options{Hostname: "relay.test", Users: r.Users,
		Tokens: &autoconfig.Tokens{Key: autoconfig.TokenKey(admintest.Token)}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", u.RequestURI(), nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<string>app@example.com</string>") {
		t.Fatalf("download: %d %s", rec.Code, rec.Body)
	}
	if _, _, err := r.run("", "autoconfig", "link", "nobody@example.com"); err == nil {
		t.Error("a link for a user that does not exist")
	}
}
