// Package dnstest runs a real, authoritative DNS server on the loopback
// interface for tests, answering from zone text.
//
// The server listens on 127.0.0.1 with one port for both UDP and TCP, so a
// resolver under test can fall back from a truncated UDP answer to TCP. It
// answers like an authoritative server for the names in its zone: the records
// of the asked type, a CNAME chain followed inside the zone, NODATA (NOERROR,
// no answers, the zone's SOA in the authority section) for a name that exists
// without records of that type, and NXDOMAIN with the SOA for a name that does
// not exist. UDP answers larger than the client's buffer (512 bytes, or its
// EDNS0 size) are truncated with the TC bit set, as real servers do.
//
// Two overrides simulate broken upstreams: [Server.ServFail] makes a name
// answer SERVFAIL and [Server.Drop] makes it never answer at all (the client
// times out). [Server.Queries] counts the queries received, to test caching.
//
// Zones use the RFC 1035 master file format; owner names should be absolute
// (end in a dot) or follow an $ORIGIN line. Records without a TTL get the
// $TTL of the zone, or 3600.
package dnstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a DNS server on 127.0.0.1 answering from a zone. It is safe for
// concurrent use; overrides may be added while it serves.
type Server struct {
	addr string
	// records holds the zone by lowercased, fully qualified owner name.
	records map[string][]dns.RR
	// soas holds the zone's SOA records by owner name, for negative answers.
	soas map[string]*dns.SOA

	queries atomic.Int64

	mu       sync.Mutex
	servfail map[string]bool
	drop     map[string]bool
}

// Start parses zone and serves it on 127.0.0.1 over UDP and TCP on the same
// port until the test ends. A zone that does not parse fails the test.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	s := &Server{
		records:  map[string][]dns.RR{},
		soas:     map[string]*dns.SOA{},
		servfail: map[string]bool{},
		drop:     map[string]bool{},
	}
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "zone")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := canonical(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
		if soa, isSOA := rr.(*dns.SOA); isSOA {
			s.soas[name] = soa
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("dnstest: parsing zone: %v", err)
	}

	pc, ln, err := listenSamePort()
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	s.addr = pc.LocalAddr().String()

	handler := dns.HandlerFunc(s.serve)
	udp := &dns.Server{PacketConn: pc, Handler: handler}
	tcp := &dns.Server{Listener: ln, Handler: handler}
	started := make(chan struct{}, 2)
	udp.NotifyStartedFunc = func() { started <- struct{}{} }
	tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	errs := make(chan error, 2)
	go func() { errs <- udp.ActivateAndServe() }()
	go func() { errs <- tcp.ActivateAndServe() }()
	for range 2 {
		select {
		case <-started:
		case err := <-errs:
			t.Fatalf("dnstest: serving: %v", err)
		}
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = udp.ShutdownContext(ctx)
		_ = tcp.ShutdownContext(ctx)
	})
	return s
}

// listenSamePort opens a UDP socket and a TCP listener on one port of
// 127.0.0.1, retrying when the TCP side of the chosen port is taken.
func listenSamePort() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listening on UDP: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP: %w", lastErr)
}

// Addr returns the server's address, "127.0.0.1:port", the same for UDP and
// TCP.
func (s *Server) Addr() string { return s.addr }

// ServFail makes every query for name (any type) answer SERVFAIL.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[canonical(name)] = true
}

// Drop makes every query for name (any type) go unanswered, so the client
// times out.
func (s *Server) Drop(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop[canonical(name)] = true
}

// Queries returns how many queries the server has received, over UDP and
// TCP, including the ones answered SERVFAIL or dropped.
func (s *Server) Queries() int { return int(s.queries.Load()) }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := canonical(q.Name)

	s.mu.Lock()
	drop, servfail := s.drop[name], s.servfail[name]
	s.mu.Unlock()
	if drop {
		return
	}
	m := new(dns.Msg)
	if servfail {
		m.SetRcode(req, dns.RcodeServerFailure)
		_ = w.WriteMsg(m)
		return
	}

	m.SetReply(req)
	m.Authoritative = true
	s.answer(m, name, q.Qtype)

	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// answer fills m with the zone's answer for (name, qtype), following CNAMEs
// inside the zone.
func (s *Server) answer(m *dns.Msg, name string, qtype uint16) {
	for hops := 0; hops < 8; hops++ {
		rrs := s.records[name]
		var found []dns.RR
		var cname *dns.CNAME
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype || qtype == dns.TypeANY {
				found = append(found, dns.Copy(rr))
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if len(found) > 0 {
			m.Answer = append(m.Answer, found...)
			return
		}
		if cname != nil && qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, dns.Copy(cname))
			name = canonical(cname.Target)
			continue
		}
		if !s.exists(name) {
			m.Rcode = dns.RcodeNameError
		}
		if soa := s.soaFor(name); soa != nil {
			m.Ns = append(m.Ns, dns.Copy(soa))
		}
		return
	}
}

// exists reports whether name owns records, or is an empty non-terminal
// (some owner name lies below it).
func (s *Server) exists(name string) bool {
	if len(s.records[name]) > 0 {
		return true
	}
	for owner := range s.records {
		if dns.IsSubDomain(name, owner) {
			return true
		}
	}
	return false
}

// soaFor returns the SOA of the closest enclosing zone of name, or nil.
func (s *Server) soaFor(name string) *dns.SOA {
	for {
		if soa, ok := s.soas[name]; ok {
			return soa
		}
		if name == "." {
			return nil
		}
		_, parent, ok := strings.Cut(name, ".")
		if !ok || parent == "" {
			parent = "."
		}
		name = parent
	}
}

func canonical(name string) string { return dns.CanonicalName(name) }
