package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/auth"
	"outbound/internal/admintest"
)

// A domain with one user on the default route and one on a smarthost
// gets an SPF record authorizing both upstreams, the submission SRV
// records and the autoconfig names, all pointing at the relay.
func TestDNSRecordsForDefaultRouteAndSmarthost(t *testing.T) {
	r := admintest.New(t)
	r.AddSmarthost(t, "sg")
	r.AddUsers(t, "app@example.com", "shop-key", "other@elsewhere.example")
	if err := r.Users.Update("shop-key", func(u *auth.User) error {
		u.AllowFrom = []string{"Example.com"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.SetRoutes(admin.RouteRequest{Users: []string{"shop-key"}, Smarthost: "sg"}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Client.DNSRecords("EXAMPLE.com.")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Domain != "example.com" || rep.Hostname != "relay.test" || len(rep.Users) != 2 {
		t.Fatalf("report %+v", rep)
	}
	want := map[string]admin.DNSRecord{
		"TXT example.com.":                    {Value: `"v=spf1 include:_spf.example.net include:sendgrid.net ~all"`},
		"SRV _submissions._tcp.example.com.":  {Value: "0 1 465 relay.test."},
		"SRV _submission._tcp.example.com.":   {Value: "0 1 587 relay.test."},
		"CNAME autoconfig.example.com.":       {Value: "relay.test."},
		"CNAME autodiscover.example.com.":     {Value: "relay.test."},
		"SRV _autodiscover._tcp.example.com.": {Value: "0 1 443 relay.test."},
	}
	if len(rep.Records) != len(want) {
		t.Errorf("%d records, want %d: %+v", len(rep.Records), len(want), rep.Records)
	}
	for _, rec := range rep.Records {
		w, ok := want[rec.Type+" "+rec.Name]
		if !ok || w.Value != rec.Value || rec.Purpose == "" {
			t.Errorf("record %+v; want value %q", rec, w.Value)
		}
	}
}

// The submission SRV records name the ports the listeners are configured
// on, as autoconfig does, with a note for a firewall that forwards the
// standard ports; on the standard ports there is no such note.
func TestDNSRecordsNameTheConfiguredSubmissionPorts(t *testing.T) {
	srv := func(rep *admin.DNSRecords, name string) string {
		for _, rec := range rep.Records {
			if rec.Type == "SRV" && rec.Name == name {
				return rec.Value
			}
		}
		return ""
	}
	portsNote := func(rep *admin.DNSRecords) string {
		for _, n := range rep.Notes {
			if strings.Contains(n, "SRV") {
				return n
			}
		}
		return ""
	}
	r := admintest.NewWith(t, func(o *admin.Options) { o.ImplicitTLSPort = 2465 })
	r.AddUsers(t, "app@example.com")
	rep, err := r.Client.DNSRecords("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := srv(rep, "_submissions._tcp.example.com."); got != "0 1 2465 relay.test." {
		t.Errorf("_submissions SRV %q, want port 2465", got)
	}
	if got := srv(rep, "_submission._tcp.example.com."); got != "0 1 587 relay.test." {
		t.Errorf("_submission SRV %q, want the standard port", got)
	}
	if n := portsNote(rep); !strings.Contains(n, "2465 for implicit TLS, 587 for STARTTLS") || !strings.Contains(n, "publish 465 and 587") {
		t.Errorf("note %q", n)
	}

	r = admintest.NewWith(t, func(o *admin.Options) { o.ImplicitTLSPort, o.STARTTLSPort = 465, 587 })
	r.AddUsers(t, "app@example.com")
	if rep, err = r.Client.DNSRecords("example.com"); err != nil {
		t.Fatal(err)
	}
	if srv(rep, "_submissions._tcp.example.com.") != "0 1 465 relay.test." || portsNote(rep) != "" {
		t.Errorf("standard ports: %+v", rep)
	}
}

func TestDNSRecordsUnknownDomainAndSenders(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, "app@example.com")
	if _, err := r.Client.DNSRecords("nobody.example"); statusOf(err) != http.StatusNotFound {
		t.Errorf("unknown domain: %v", err)
	}
	// Operators only: a sender may not map the relay's domains.
	if _, err := r.Client.ActingFor("app@example.com").DNSRecords("example.com"); statusOf(err) != http.StatusForbidden {
		t.Errorf("as a sender: %v", err)
	}
}

// With DKIM keys the domain's TXT key records (long RSA values split in
// quoted strings of at most 255 octets) and a DMARC suggestion follow; a
// domain without keys gets a note naming the command that makes them.
func TestDNSRecordsWithDKIM(t *testing.T) {
	r := dkimRig(t)
	r.AddUsers(t, "app@example.org", "app@example.com")
	if _, err := r.Client.GenerateDKIM("example.org", admin.DKIMKeyRequest{Selector: "s1"}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Client.DNSRecords("example.org")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, rec := range rep.Records {
		got[rec.Type+" "+rec.Name] = rec.Value
	}
	ed, rsa := got["TXT s1-ed25519._domainkey.example.org."], got["TXT s1-rsa._domainkey.example.org."]
	if !strings.HasPrefix(ed, `"v=DKIM1; k=ed25519; p=`) || !strings.HasPrefix(rsa, `"v=DKIM1; k=rsa; p=`) || !strings.Contains(rsa, `" "`) {
		t.Errorf("DKIM records: ed25519 %s\nrsa %s", ed, rsa)
	}
	for _, part := range strings.Split(rsa, `" "`) {
		if len(strings.Trim(part, `"`)) > 255 {
			t.Errorf("a TXT string of %d octets", len(part))
		}
	}
	if !strings.HasPrefix(got["TXT _dmarc.example.org."], `"v=DMARC1; p=none`) {
		t.Errorf("DMARC suggestion: %q", got["TXT _dmarc.example.org."])
	}

	rep, err = r.Client.DNSRecords("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "outbound dkim keygen example.com") {
		t.Errorf("notes %q", rep.Notes)
	}
}
