package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"outbound/autoconfig"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
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

// The records of a domain with DKIM keys parse as a zone file (the RSA
// key's value split into strings), each under a comment that says what
// it is for, and no line is padded to the width of the longest value.
func TestCLIDNSRecordsPasteIntoAZone(t *testing.T) {
	r := newDKIMCLIRig(t)
	r.AddUsers(t, "app@example.org")
	r.mustRun("dkim", "keygen", "example.org", "--selector", "s1")
	out := r.mustRun("dns", "records", "example.org")
	zp := dns.NewZoneParser(strings.NewReader(out), "", "")
	zp.SetDefaultTTL(3600)
	count := map[string]int{}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		count[dns.TypeToString[rr.Header().Rrtype]]++
		if txt, isTXT := rr.(*dns.TXT); isTXT && strings.HasPrefix(rr.Header().Name, "s1-rsa.") &&
			!strings.HasPrefix(strings.Join(txt.Txt, ""), "v=DKIM1; k=rsa; p=") {
			t.Errorf("the RSA record reads back as %q", txt.Txt)
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("not a zone file: %v\n%s", err, out)
	}
	// SPF, two DKIM keys, DMARC; submission, submissions, autodiscover;
	// autoconfig and autodiscover.
	if count["TXT"] != 4 || count["SRV"] != 3 || count["CNAME"] != 2 {
		t.Errorf("records: %v\n%s", count, out)
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, "   ") {
			t.Errorf("line %d is padded: %q", i+1, l)
		}
		if strings.Contains(l, " IN ") && !strings.HasPrefix(l, ";") && (i == 0 || !strings.HasPrefix(lines[i-1], "; ")) {
			t.Errorf("record on line %d has no comment above it:\n%s", i+1, out)
		}
	}
	if !strings.Contains(out, "; DKIM rsa key, signing\ns1-rsa._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p=") {
		t.Errorf("the RSA key's record is not under its comment:\n%s", out)
	}
}

// The served relay's SRV records name the port its implicit-TLS listener
// is configured on, the one autoconfig announces, and say why.
func TestServeDNSRecordsNameTheListenersPorts(t *testing.T) {
	dir := t.TempDir()
	_, adminPort, _ := net.SplitHostPort(testutil.FreePort(t))
	_, smtpsPort, _ := net.SplitHostPort(testutil.FreePort(t))
	config := testutil.WriteFile(t, dir, "outbound.toml", []byte("hostname = \"relay.test\"\n"+
		"data_dir = "+strconv.Quote(filepath.Join(dir, "data"))+"\n"+
		"[submission]\nimplicit_tls = "+strconv.Quote(net.JoinHostPort("127.0.0.1", smtpsPort))+"\nstarttls = \"\"\n"+
		"[admin]\nlisten = "+strconv.Quote(net.JoinHostPort("127.0.0.1", adminPort))+"\n"))
	cfg, err := loadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	if out, err := runCLI(t, config, "a long enough password\n", "user", "add", "alice@example.org"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	out, err := runCLI(t, config, "", "dns", "records", "example.org")
	if err != nil {
		t.Fatalf("dns records: %v\n%s", err, out)
	}
	for _, want := range []string{"_submissions._tcp.example.org. IN SRV 0 1 " + smtpsPort + " relay.test.",
		"(" + smtpsPort + " for implicit TLS, 587 for STARTTLS), as autoconfig does"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
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
