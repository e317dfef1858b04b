package dnstest

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const zone = `
$ORIGIN example.test.
$TTL 120
@        SOA    ns.example.test. hostmaster.example.test. 1 3600 600 86400 45
@        TXT    "v=spf1 -all"
www      A      192.0.2.80
alias    CNAME  www.example.test.
a.b.deep TXT    "deep"
`

func exchange(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: time.Second}
	resp, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return resp
}

func TestAnswersFromZoneOverUDPAndTCP(t *testing.T) {
	s := Start(t, zone)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("address %q is not on 127.0.0.1", s.Addr())
	}
	for _, network := range []string{"udp", "tcp"} {
		resp := exchange(t, s, network, "WWW.example.test", dns.TypeA)
		if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative || len(resp.Answer) != 1 {
			t.Fatalf("%s: %v", network, resp)
		}
		a := resp.Answer[0].(*dns.A)
		if a.A.String() != "192.0.2.80" || a.Hdr.Ttl != 120 {
			t.Errorf("%s: answer %v", network, a)
		}
	}
}

func TestCNAMEIsFollowedInZone(t *testing.T) {
	s := Start(t, zone)
	resp := exchange(t, s, "udp", "alias.example.test", dns.TypeA)
	if len(resp.Answer) != 2 || resp.Answer[0].Header().Rrtype != dns.TypeCNAME || resp.Answer[1].Header().Rrtype != dns.TypeA {
		t.Errorf("answer %v, want the CNAME then the A record", resp.Answer)
	}
}

func TestMissingNameIsNXDOMAINWithSOA(t *testing.T) {
	s := Start(t, zone)
	resp := exchange(t, s, "udp", "nothere.example.test", dns.TypeTXT)
	if resp.Rcode != dns.RcodeNameError || len(resp.Answer) != 0 {
		t.Fatalf("%v", resp)
	}
	if len(resp.Ns) != 1 || resp.Ns[0].(*dns.SOA).Minttl != 45 {
		t.Errorf("authority %v, want the zone's SOA", resp.Ns)
	}
}

func TestNameWithoutThatTypeIsNODATA(t *testing.T) {
	s := Start(t, zone)
	for _, name := range []string{"www.example.test", "b.deep.example.test"} { // the second is an empty non-terminal
		resp := exchange(t, s, "udp", name, dns.TypeTXT)
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 || len(resp.Ns) != 1 {
			t.Errorf("%s: %v, want NOERROR with no answer and the SOA", name, resp)
		}
	}
}

func TestServFailOverride(t *testing.T) {
	s := Start(t, zone)
	s.ServFail("WWW.example.test.")
	if resp := exchange(t, s, "udp", "www.example.test", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
}

func TestDropOverrideNeverAnswers(t *testing.T) {
	s := Start(t, zone)
	s.Drop("www.example.test")
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	if resp, _, err := c.Exchange(m, s.Addr()); err == nil {
		t.Fatalf("got an answer %v, want a timeout", resp)
	}
	if s.Queries() != 1 {
		t.Errorf("%d queries counted, want 1", s.Queries())
	}
}

func TestLargeUDPAnswerIsTruncated(t *testing.T) {
	big := `big.example.test. TXT "` + strings.Repeat("x", 250) + `" "` + strings.Repeat("y", 250) + `" "` + strings.Repeat("z", 250) + `"`
	s := Start(t, zone+big)
	if resp := exchange(t, s, "udp", "big.example.test", dns.TypeTXT); !resp.Truncated {
		t.Errorf("UDP answer of 750+ bytes to a 512-byte client not truncated")
	}
	resp := exchange(t, s, "tcp", "big.example.test", dns.TypeTXT)
	if resp.Truncated || len(resp.Answer) != 1 {
		t.Errorf("TCP answer %v, want it whole", resp)
	}
}

func TestQueriesAreCounted(t *testing.T) {
	s := Start(t, zone)
	exchange(t, s, "udp", "www.example.test", dns.TypeA)
	exchange(t, s, "tcp", "example.test", dns.TypeTXT)
	if n := s.Queries(); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}
}
