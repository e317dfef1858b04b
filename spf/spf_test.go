package spf

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	blitiri "blitiri.com.ar/go/spf"

	"outbound/internal/dnstest"
)

// mailgunEU is the upstream most tests check against; its include chain is
// in testdata/upstreams.zone.
var mailgunEU = Identity{Name: "Mailgun EU", Include: "_spf.eu.mailgun.test"}

// startDNS serves the concatenated zone files from testdata.
func startDNS(t *testing.T, files ...string) *dnstest.Server {
	t.Helper()
	var zone strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		zone.Write(b)
		zone.WriteString("\n")
	}
	return dnstest.Start(t, zone.String())
}

// startChecker serves upstreams.zone and senders.zone and returns a Checker
// using that server.
func startChecker(t *testing.T) (*Checker, *dnstest.Server) {
	t.Helper()
	srv := startDNS(t, "upstreams.zone", "senders.zone")
	r, err := NewResolver([]string{srv.Addr()}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return &Checker{Resolver: r}, srv
}

func check(t *testing.T, c *Checker, domain string, id Identity) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := c.Check(ctx, domain, id)
	t.Logf("%s: %s, tested %v, fix %q, err %v", domain, res.Verdict, res.TestedIPs, res.Fix, res.Err)
	return res
}

func wantVerdict(t *testing.T, res Result, want Verdict) {
	t.Helper()
	if res.Verdict != want {
		t.Fatalf("verdict %q, want %q (fix %q, err %v)", res.Verdict, want, res.Fix, res.Err)
	}
}

func wantFix(t *testing.T, res Result, want string) {
	t.Helper()
	if res.Fix != want {
		t.Fatalf("fix\n got %q\nwant %q", res.Fix, want)
	}
}

func ips(ss ...string) []net.IP {
	var out []net.IP
	for _, s := range ss {
		out = append(out, net.ParseIP(s))
	}
	return out
}

func sameIPs(a, b []net.IP) bool {
	return slices.EqualFunc(a, b, func(x, y net.IP) bool { return x.Equal(y) })
}

func TestIncludeOfUpstreamPasses(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "pass.test", mailgunEU)
	wantVerdict(t, res, Pass)
	if res.Fix != "" || res.Err != nil {
		t.Errorf("pass carries fix %q, err %v", res.Fix, res.Err)
	}
	// Every address the upstream's chain authorizes is tested: the first
	// of each range, the "a" host, IPv6 included; not the -ip4 exclusion.
	want := ips("192.0.2.0", "198.51.100.16", "203.0.113.7", "2001:db8:10::")
	if !sameIPs(res.TestedIPs, want) {
		t.Errorf("tested %v, want %v", res.TestedIPs, want)
	}
}

func TestRecordsListTheChainInOrder(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "pass.test", mailgunEU)
	want := []Record{
		{"pass.test", "v=spf1 mx include:_spf.eu.mailgun.test ~all"},
		{"_spf.eu.mailgun.test", "v=spf1 include:_ranges1.eu.mailgun.test include:_ranges2.eu.mailgun.test ~all"},
		{"_ranges1.eu.mailgun.test", "v=spf1 ip4:192.0.2.0/25 ip4:198.51.100.16/28 ~all"},
		{"_ranges2.eu.mailgun.test", "v=spf1 ip6:2001:db8:10::/48 a:out.eu.mailgun.test -ip4:203.0.113.99 ~all"},
	}
	if !slices.Equal(res.Records, want) {
		t.Errorf("records\n got %q\nwant %q", res.Records, want)
	}
}

func TestRedirectToPolicyWithIncludePasses(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "redirected.test", mailgunEU)
	wantVerdict(t, res, Pass)
	if len(res.Records) < 2 || res.Records[1].Domain != "_spf.corp.test" {
		t.Errorf("records %q do not show the redirect target second", res.Records)
	}
}

func TestMissingIncludeFailsWithFix(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "sendgrid-only.test", mailgunEU)
	wantVerdict(t, res, Fail)
	wantFix(t, res, "sendgrid-only.test's SPF does not authorize Mailgun EU; add include:_spf.eu.mailgun.test to its TXT record")
	if res.Err != nil {
		t.Errorf("fail carries err %v", res.Err)
	}
	if len(res.TestedIPs) != 1 {
		t.Errorf("tested %v, want only the first, failing sample", res.TestedIPs)
	}
}

func TestOtherProviderPassesForItself(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "sendgrid-only.test", Identity{Name: "SendGrid", Include: "sendgrid.test"})
	wantVerdict(t, res, Pass)
}

func TestSoftfailAllGivesSoftfailWithFix(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "softfail.test", mailgunEU)
	wantVerdict(t, res, SoftFail)
	wantFix(t, res, "softfail.test's SPF does not authorize Mailgun EU; add include:_spf.eu.mailgun.test to its TXT record")
}

func TestNeutralAllGivesNeutralWithFix(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "neutral.test", mailgunEU)
	wantVerdict(t, res, Neutral)
	wantFix(t, res, "neutral.test's SPF does not authorize Mailgun EU; add include:_spf.eu.mailgun.test to its TXT record")
}

func TestHandFlattenedIPv4OnlyRecordFailsOnUpstreamIPv6(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "flattened.test", mailgunEU)
	wantVerdict(t, res, Fail)
	last := res.TestedIPs[len(res.TestedIPs)-1]
	if !last.Equal(net.ParseIP("2001:db8:10::")) {
		t.Errorf("failing address %v, want the upstream's IPv6 range", last)
	}
	wantFix(t, res, "flattened.test's SPF does not authorize Mailgun EU; add include:_spf.eu.mailgun.test to its TXT record")
}

func TestMoreThanTenLookupsIsPermerror(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "toomany.test", mailgunEU)
	wantVerdict(t, res, PermError)
	if !errors.Is(res.Err, blitiri.ErrLookupLimitReached) {
		t.Errorf("err %v, want the lookup limit", res.Err)
	}
	if !strings.HasPrefix(res.Fix, "toomany.test's SPF record is broken: evaluating it takes more than 10 DNS lookups") {
		t.Errorf("fix %q does not say the record needs more than 10 lookups", res.Fix)
	}
}

func TestMoreThanTwoVoidLookupsIsPermerror(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "voids.test", mailgunEU)
	wantVerdict(t, res, PermError)
	if !errors.Is(res.Err, blitiri.ErrVoidLookupLimitReached) {
		t.Errorf("err %v, want the void lookup limit", res.Err)
	}
	if !strings.Contains(res.Fix, "more than 2 of its DNS lookups find nothing") {
		t.Errorf("fix %q does not explain void lookups", res.Fix)
	}
}

func TestDomainWithoutSPFRecordIsNoneWithFix(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "nospf.test", mailgunEU)
	wantVerdict(t, res, None)
	wantFix(t, res, `nospf.test publishes no SPF record; add a TXT record "v=spf1 include:_spf.eu.mailgun.test ~all"`)
	if len(res.Records) != 0 {
		t.Errorf("records %q, want none", res.Records)
	}
}

func TestNonexistentDomainIsNone(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "no-such-domain.test", mailgunEU)
	wantVerdict(t, res, None)
}

func TestIncludeOfDomainWithoutSPFIsPermerror(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "badinclude.test", mailgunEU)
	wantVerdict(t, res, PermError)
	wantFix(t, res, "badinclude.test's SPF record is broken: it includes or redirects to nospf.test, which publishes no SPF record; "+
		"remove that term or point it at a domain that has one")
}

func TestTwoSPFRecordsArePermerror(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "twice.test", mailgunEU)
	wantVerdict(t, res, PermError)
	if !errors.Is(res.Err, blitiri.ErrMultipleRecords) {
		t.Errorf("err %v, want multiple records", res.Err)
	}
	if len(res.Records) != 2 {
		t.Errorf("records %q, want both SPF records listed", res.Records)
	}
	if !strings.Contains(res.Fix, "merge them into a single record") {
		t.Errorf("fix %q does not say to merge", res.Fix)
	}
}

func TestServfailIsTemperror(t *testing.T) {
	c, srv := startChecker(t)
	srv.ServFail("_spf.flaky-dns.test")
	res := check(t, c, "flaky.test", mailgunEU)
	wantVerdict(t, res, TempError)
	var derr *net.DNSError
	if !errors.As(res.Err, &derr) || !derr.Temporary() {
		t.Errorf("err %#v, want a temporary *net.DNSError", res.Err)
	}
	wantFix(t, res, "flaky.test's SPF could not be checked: the DNS lookup of _spf.flaky-dns.test failed temporarily "+
		"(TXT query answered SERVFAIL); try again later")
}

func TestTimeoutIsTemperror(t *testing.T) {
	c, srv := startChecker(t)
	srv.Drop("_spf.flaky-dns.test")
	res := check(t, c, "flaky.test", mailgunEU)
	wantVerdict(t, res, TempError)
	var derr *net.DNSError
	if !errors.As(res.Err, &derr) || !derr.IsTimeout {
		t.Errorf("err %#v, want a timeout *net.DNSError", res.Err)
	}
	if !strings.Contains(res.Fix, "the DNS lookup of _spf.flaky-dns.test failed temporarily (TXT query got no answer within 300ms)") {
		t.Errorf("fix %q does not name the lookup that timed out", res.Fix)
	}
}

func TestTXTSplitIntoSeveralStringsIsJoined(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "split.test", mailgunEU)
	wantVerdict(t, res, Pass)
	if res.Records[0].Text != "v=spf1 include:_spf.eu.mailgun.test ~all" {
		t.Errorf("record %q, want the strings joined", res.Records[0].Text)
	}
}

func TestExplicitEgressIPsAreChecked(t *testing.T) {
	c, _ := startChecker(t)
	relay := Identity{Name: "our relay", IPs: ips("203.0.113.50", "2001:db8:99::50")}
	res := check(t, c, "ownip.test", relay)
	wantVerdict(t, res, Pass)
	if !sameIPs(res.TestedIPs, relay.IPs) {
		t.Errorf("tested %v, want %v", res.TestedIPs, relay.IPs)
	}
}

func TestMissingEgressIPFailsWithIPFix(t *testing.T) {
	c, _ := startChecker(t)
	relay := Identity{Name: "our relay", IPs: ips("2001:db8:99::51")}
	res := check(t, c, "ownip.test", relay)
	wantVerdict(t, res, Fail)
	wantFix(t, res, "ownip.test's SPF does not authorize our relay; add ip6:2001:db8:99::51 to its TXT record")
}

func TestExplicitIPsAreTestedBeforeIncludeRanges(t *testing.T) {
	c, _ := startChecker(t)
	id := Identity{Name: "Mailgun EU", Include: "_spf.eu.mailgun.test", IPs: ips("198.51.100.99")}
	res := check(t, c, "pass.test", id)
	wantVerdict(t, res, SoftFail) // pass.test ends in ~all
	wantFix(t, res, "pass.test's SPF does not authorize Mailgun EU; add ip4:198.51.100.99 to its TXT record")
}

func TestUpstreamMXHostsBehindRedirectAreSampled(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "usesmx.test", Identity{Name: "MX Mail", Include: "_spf.mxmail.test"})
	wantVerdict(t, res, Pass)
	want := ips("198.51.100.77", "2001:db8:30::25")
	if !sameIPs(res.TestedIPs, want) {
		t.Errorf("tested %v, want the MX hosts' addresses %v", res.TestedIPs, want)
	}
}

func TestUpstreamIncludeWithoutRecordIsPermerror(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "pass.test", Identity{Name: "Gone Mail", Include: "_spf.gone.test"})
	wantVerdict(t, res, PermError)
	wantFix(t, res, "cannot check pass.test's SPF for Gone Mail: _spf.gone.test, the SPF include of Gone Mail, publishes no SPF record, "+
		"so the addresses Gone Mail sends from are unknown; check the SPF include set for Gone Mail")
}

func TestUpstreamIncludeServfailIsTemperror(t *testing.T) {
	c, srv := startChecker(t)
	srv.ServFail("_spf.flaky-upstream.test")
	res := check(t, c, "pass.test", Identity{Name: "Flaky Mail", Include: "_spf.flaky-upstream.test"})
	wantVerdict(t, res, TempError)
	wantFix(t, res, "cannot check pass.test's SPF for Flaky Mail: the DNS lookup of _spf.flaky-upstream.test, the SPF include of Flaky Mail, "+
		"failed temporarily (TXT query answered SERVFAIL); try again later")
}

func TestIdentityWithoutIncludeOrIPsIsPermerror(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, "pass.test", Identity{Name: "Nothing"})
	wantVerdict(t, res, PermError)
}

func TestInvalidDomainIsPermerror(t *testing.T) {
	c, _ := startChecker(t)
	for _, d := range []string{"", "user@pass.test", "bad..name"} {
		res := check(t, c, d, mailgunEU)
		wantVerdict(t, res, PermError)
	}
}

func TestDomainIsNormalized(t *testing.T) {
	c, _ := startChecker(t)
	res := check(t, c, " Pass.TEST. ", mailgunEU)
	wantVerdict(t, res, Pass)
	if res.Domain != "pass.test" {
		t.Errorf("domain %q, want pass.test", res.Domain)
	}
}

func TestRepeatedChecksAreAnsweredFromCache(t *testing.T) {
	c, srv := startChecker(t)
	check(t, c, "pass.test", mailgunEU)
	before := srv.Queries()
	res := check(t, c, "pass.test", mailgunEU)
	wantVerdict(t, res, Pass)
	if n := srv.Queries() - before; n != 0 {
		t.Errorf("second check sent %d queries, want 0", n)
	}
}

func TestSampleSpreadsOverRangesAndKeepsBothFamilies(t *testing.T) {
	var v4, v6 []net.IP
	for i := range 40 {
		v4 = append(v4, net.IPv4(192, 0, 2, byte(i)))
	}
	v6 = ips("2001:db8::1")
	got := sample(v4, v6, 8)
	want := append(ips("192.0.2.0", "192.0.2.5", "192.0.2.11", "192.0.2.17", "192.0.2.22", "192.0.2.28", "192.0.2.34"), v6...)
	if !sameIPs(got, want) {
		t.Errorf("sample %v, want %v", got, want)
	}
	if got := sample(v4[:3], nil, 8); len(got) != 3 {
		t.Errorf("sample of 3 gave %v", got)
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"off": PolicyOff, "warn": PolicyWarn, " Enforce ": PolicyEnforce} {
		got, err := ParsePolicy(in)
		if err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParsePolicyRejectsUnknownNamingValidOnes(t *testing.T) {
	_, err := ParsePolicy("strict")
	if err == nil || !strings.Contains(err.Error(), "off, warn, enforce") {
		t.Errorf("error %v does not name the valid policies", err)
	}
}
