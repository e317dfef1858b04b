package autoconfig

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"outbound/auth"
)

// userList is the users the handler sees.
type userList []*auth.User

func (l userList) List() ([]*auth.User, error) { return l, nil }

func testOptions() Options {
	return Options{Hostname: "relay.example.net", Users: userList{
		{Name: "alice@example.com", DisplayName: "Alice & Co"},
		{Name: "app-key", AllowFrom: []string{"Shop.Example.ORG", "news@letters.example"}},
	}}
}

func get(t *testing.T, h http.Handler, target, host string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	if host != "" {
		req.Host = host
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestThunderbirdConfigForKnownDomains(t *testing.T) {
	h := Handler(testOptions())
	for _, c := range []struct{ target, host, domain string }{
		{"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.com", "example.com", "example.com"},
		{"/mail/config-v1.1.xml?emailaddress=bob%40shop.example.org", "autoconfig.shop.example.org", "shop.example.org"},
		// No address: the domain comes from the autoconfig.<domain> host.
		{"/mail/config-v1.1.xml", "autoconfig.letters.example:443", "letters.example"},
	} {
		rec := get(t, h, c.target, c.host)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", c.target, rec.Code, rec.Body)
		}
		var cc ClientConfig
		if err := xml.Unmarshal(rec.Body.Bytes(), &cc); err != nil {
			t.Fatalf("%s: not well-formed XML: %v\n%s", c.target, err, rec.Body)
		}
		if cc.Version != "1.1" || cc.Provider.Domain != c.domain || len(cc.Provider.Outgoing) != 2 || len(cc.Provider.Incoming) != 1 {
			t.Fatalf("%s: %+v", c.target, cc)
		}
		// Thunderbird needs an incoming server; the relay's name stands in.
		if in := cc.Provider.Incoming[0]; in.Type != "imap" || in.Hostname != "relay.example.net" || in.Port != 993 {
			t.Errorf("incomingServer %+v", in)
		}
		want := []Server{
			{Type: "smtp", Hostname: "relay.example.net", Port: 465, SocketType: "SSL", Authentication: "password-cleartext", Username: "%EMAILADDRESS%"},
			{Type: "smtp", Hostname: "relay.example.net", Port: 587, SocketType: "STARTTLS", Authentication: "password-cleartext", Username: "%EMAILADDRESS%"},
		}
		for i, s := range cc.Provider.Outgoing {
			if s != want[i] {
				t.Errorf("%s: outgoingServer %d = %+v, want %+v", c.target, i, s, want[i])
			}
		}
	}
}

func TestUnknownDomainIsNotFound(t *testing.T) {
	h := Handler(testOptions())
	for _, target := range []string{
		"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=eve%40elsewhere.example",
		"/mail/config-v1.1.xml",
	} {
		if rec := get(t, h, target, "autoconfig.elsewhere.example"); rec.Code != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", target, rec.Code)
		}
	}
	body := `<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>eve@elsewhere.example</EMailAddress></Request></Autodiscover>`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/autodiscover/autodiscover.xml", strings.NewReader(body)))
	if rec.Code != http.StatusNotFound {
		t.Errorf("autodiscover for an unknown domain: status %d, want 404", rec.Code)
	}
}

func TestOutlookAutodiscover(t *testing.T) {
	h := Handler(testOptions())
	body := `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>alice@example.com</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
	for _, path := range []string{"/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body)
		}
		var resp AutodiscoverResponse
		if err := xml.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("not well-formed (or wrong namespaces): %v\n%s", err, rec.Body)
		}
		acc := resp.Response.Account
		if acc.AccountType != "email" || acc.Action != "settings" || len(acc.Protocol) != 1 {
			t.Fatalf("account %+v", acc)
		}
		p := acc.Protocol[0]
		if p.Type != "SMTP" || p.Server != "relay.example.net" || p.Port != 465 || p.SSL != "on" || p.LoginName != "alice@example.com" {
			t.Errorf("protocol %+v", p)
		}
	}
}

// plistJSON parses a property list with Python's plistlib, an independent
// parser, and returns it as JSON.
func plistJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed to check the profile with plistlib (scripts/install-test-deps.sh installs it)")
	}
	cmd := exec.Command(py, "-c", "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read(), fmt=plistlib.FMT_XML)))")
	cmd.Stdin = strings.NewReader(string(data))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plistlib refuses the profile: %v\n%s", err, data)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestProfileIsAValidMailPlist(t *testing.T) {
	o := testOptions()
	u := o.Users.(userList)[0]
	p := plistJSON(t, o.Profile(u))
	if p["PayloadType"] != "Configuration" || p["PayloadVersion"] != float64(1) {
		t.Errorf("top level %v", p)
	}
	content := p["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("payloads %v", content)
	}
	mail := content[0].(map[string]any)
	for k, want := range map[string]any{
		"PayloadType":                      "com.apple.mail.managed",
		"EmailAccountType":                 "EmailTypeIMAP",
		"EmailAddress":                     "alice@example.com",
		"EmailAccountName":                 "Alice & Co",
		"OutgoingMailServerHostName":       "relay.example.net",
		"OutgoingMailServerPortNumber":     float64(465),
		"OutgoingMailServerUseSSL":         true,
		"OutgoingMailServerAuthentication": "EmailAuthPassword",
		"OutgoingMailServerUsername":       "alice@example.com",
		"IncomingMailServerHostName":       "relay.example.net",
		"IncomingMailServerAuthentication": "EmailAuthPassword",
	} {
		if mail[k] != want {
			t.Errorf("%s = %v, want %v", k, mail[k], want)
		}
	}
	if mail["OutgoingPasswordSameAsIncomingPassword"] != true {
		t.Error("with no IMAP server of its own, Mail should ask for one password")
	}
	o.IMAPHost = "imap.example.com"
	mail = plistJSON(t, o.Profile(u))["PayloadContent"].([]any)[0].(map[string]any)
	if mail["IncomingMailServerHostName"] != "imap.example.com" || mail["OutgoingPasswordSameAsIncomingPassword"] != false {
		t.Errorf("with imap_host: %v, same password %v", mail["IncomingMailServerHostName"], mail["OutgoingPasswordSameAsIncomingPassword"])
	}
	o.IMAPHost = ""
	// Downloading again gives the same identifiers: a reinstall replaces.
	if string(o.Profile(u)) != string(o.Profile(u)) {
		t.Error("the profile is not stable")
	}
}

func TestProfileTokenLink(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	o := testOptions()
	o.Tokens = &Tokens{Key: TokenKey("admin-token"), Now: func() time.Time { return now }}
	h := Handler(o)
	tok := o.Tokens.Sign("alice@example.com", now.Add(time.Hour))

	rec := get(t, h, ProfilePath+"?token="+tok, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-apple-aspen-config" {
		t.Fatalf("valid link: status %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	mail := plistJSON(t, rec.Body.Bytes())["PayloadContent"].([]any)[0].(map[string]any)
	if mail["OutgoingMailServerUsername"] != "alice@example.com" {
		t.Errorf("profile for %v", mail["OutgoingMailServerUsername"])
	}

	// Tampered: the login changed under the same MAC.
	_, mac, _ := strings.Cut(tok, ".")
	forged := (&Tokens{Key: []byte("other key")}).Sign("app-key", now.Add(time.Hour))
	forgedPayload, _, _ := strings.Cut(forged, ".")
	for name, bad := range map[string]string{
		"tampered":  forgedPayload + "." + mac,
		"other key": forged,
		"garbage":   "xyz",
		"empty":     "",
	} {
		if rec := get(t, h, ProfilePath+"?token="+bad, ""); rec.Code != http.StatusForbidden {
			t.Errorf("%s token: status %d, want 403", name, rec.Code)
		}
	}

	now = now.Add(2 * time.Hour)
	rec = get(t, h, ProfilePath+"?token="+tok, "")
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusForbidden || !strings.Contains(string(body), "expired") {
		t.Errorf("expired link: status %d: %s", rec.Code, body)
	}
}

func TestProfileLinkOffWithoutTokens(t *testing.T) {
	o := testOptions()
	if rec := get(t, Handler(o), ProfilePath+"?token=x", ""); rec.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404", rec.Code)
	}
}
