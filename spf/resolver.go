package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Cache and query limits of the Resolver.
const (
	// DefaultTimeout is the per-query timeout when NewResolver is given none.
	DefaultTimeout = 5 * time.Second
	// maxPositiveTTL caps how long an answer is cached, whatever its TTL.
	maxPositiveTTL = time.Hour
	// maxNegativeTTL caps how long "no such name" and "no records of that
	// type" are cached, so a domain that just published a record is seen
	// soon. The zone's SOA sets a shorter time if it asks for one.
	maxNegativeTTL = time.Minute
	// defaultNegativeTTL applies to negative answers without an SOA.
	defaultNegativeTTL = 30 * time.Second
	// maxCacheEntries bounds the cache; past it, expired entries are swept
	// and then arbitrary ones dropped.
	maxCacheEntries = 10000
	// ednsBufferSize is the UDP payload size we advertise (the DNS Flag Day
	// 2020 value, which avoids IP fragmentation).
	ednsBufferSize = 1232
	// resolvConf is read when NewResolver is given no servers.
	resolvConf = "/etc/resolv.conf"
)

// Resolver answers the DNS queries of SPF evaluation with
// github.com/miekg/dns, talking to recursive servers directly.
//
// Each query goes over UDP, and again over TCP when the answer comes back
// truncated; on a timeout, a network error or an answer other than NOERROR
// and NXDOMAIN, the next server is tried. Answers are cached in memory for
// their TTL, at most an hour; negative answers (NXDOMAIN, or no records of
// the asked type) for at most a minute; failures (SERVFAIL, timeouts) never.
//
// Errors are always *net.DNSError, shaped the way blitiri.com.ar/go/spf
// reads them: IsNotFound for NXDOMAIN and for "no records of that type"
// (void lookups, or "no SPF record" → none), IsTimeout or IsTemporary for
// everything else (→ temperror). Resolver implements spf.DNSResolver and is
// safe for concurrent use.
type Resolver struct {
	servers []string
	timeout time.Duration

	// now is the clock for cache expiry; tests replace it.
	now func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

type cacheKey struct {
	name  string // canonical: lowercase, fully qualified
	qtype uint16
}

type cacheEntry struct {
	answers []dns.RR // records of the asked type; empty for a negative answer
	server  string   // who answered, for error messages
	expires time.Time
}

// NewResolver returns a Resolver that asks servers ("host:port"; a bare IP
// address means port 53) in order, waiting at most timeout for each answer
// (DefaultTimeout when zero or less). With no servers it uses the
// nameservers of /etc/resolv.conf.
func NewResolver(servers []string, timeout time.Duration) (*Resolver, error) {
	if len(servers) == 0 {
		return newResolverFromFile(resolvConf, timeout)
	}
	r := &Resolver{
		timeout: timeout,
		now:     time.Now,
		cache:   map[cacheKey]cacheEntry{},
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	for _, s := range servers {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, addr)
	}
	return r, nil
}

// newResolverFromFile reads the nameservers of a resolv.conf(5) file.
func newResolverFromFile(path string, timeout time.Duration) (*Resolver, error) {
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("no DNS servers given and reading %s failed: %w", path, err)
	}
	if len(conf.Servers) == 0 {
		return nil, fmt.Errorf("no DNS servers given and %s lists no nameserver", path)
	}
	servers := make([]string, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		servers = append(servers, net.JoinHostPort(s, conf.Port))
	}
	return NewResolver(servers, timeout)
}

func serverAddr(s string) (string, error) {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s, nil
	}
	if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	return "", fmt.Errorf("DNS server %q is not host:port (for example 127.0.0.1:53)", s)
}

// Servers returns the servers the Resolver asks, in order.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// LookupTXT returns the TXT records of name, each record's strings joined
// into one, as SPF requires (RFC 7208 section 3.3).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var txts []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(t.Txt, ""))
		}
	}
	return txts, nil
}

// LookupMX returns the MX records of name.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var mxs []*net.MX
	for _, rr := range rrs {
		if m, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, &net.MX{Host: m.Mx, Pref: m.Preference})
		}
	}
	return mxs, nil
}

// LookupIPAddr returns the IPv4 and IPv6 addresses of host. Addresses found
// for one family are returned even if the other family's query failed;
// with none found, a failure of either query is returned as temporary.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var addrs []net.IPAddr
	var tempErr, notFound error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.lookup(ctx, host, qtype)
		var derr *net.DNSError
		switch {
		case err == nil:
		case errors.As(err, &derr) && derr.IsNotFound:
			notFound = err
			continue
		default:
			tempErr = err
			continue
		}
		for _, rr := range rrs {
			switch a := rr.(type) {
			case *dns.A:
				addrs = append(addrs, net.IPAddr{IP: a.A})
			case *dns.AAAA:
				addrs = append(addrs, net.IPAddr{IP: a.AAAA})
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	if tempErr != nil {
		return nil, tempErr
	}
	if notFound == nil {
		notFound = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return nil, notFound
}

// LookupAddr returns the names (PTR records) of the address addr.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	rrs, err := r.lookup(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, rr := range rrs {
		if p, ok := rr.(*dns.PTR); ok {
			names = append(names, p.Ptr)
		}
	}
	return names, nil
}

// lookup returns the records of type qtype for name, from the cache or the
// servers. A negative answer is a *net.DNSError with IsNotFound.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	qname := dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(qname); !ok || qname == "." {
		return nil, &net.DNSError{Err: "no such host (not a valid domain name)", Name: name, IsNotFound: true}
	}
	key := cacheKey{qname, qtype}
	if e, ok := r.cached(key); ok {
		return answerOrNotFound(e, name)
	}
	e, err := r.exchange(ctx, name, qname, qtype)
	if err != nil {
		return nil, err
	}
	r.store(key, e)
	return answerOrNotFound(e, name)
}

func answerOrNotFound(e cacheEntry, name string) ([]dns.RR, error) {
	if len(e.answers) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: name, Server: e.server, IsNotFound: true}
	}
	return e.answers, nil
}

func (r *Resolver) cached(key cacheKey) (cacheEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[key]
	if !ok {
		return cacheEntry{}, false
	}
	if !r.now().Before(e.expires) {
		delete(r.cache, key)
		return cacheEntry{}, false
	}
	return e, true
}

func (r *Resolver) store(key cacheKey, e cacheEntry) {
	if !e.expires.After(r.now()) {
		return // TTL 0: do not cache
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= maxCacheEntries {
		now := r.now()
		for k, old := range r.cache {
			if !now.Before(old.expires) {
				delete(r.cache, k)
			}
		}
		for k := range r.cache {
			if len(r.cache) < maxCacheEntries {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[key] = e
}

// exchange asks the servers in turn until one gives a definite answer
// (NOERROR or NXDOMAIN). The result carries its expiry time.
func (r *Resolver) exchange(ctx context.Context, name, qname string, qtype uint16) (cacheEntry, error) {
	var lastErr *net.DNSError
	for _, server := range r.servers {
		resp, err := r.ask(ctx, server, qname, qtype)
		if err != nil {
			lastErr = &net.DNSError{Name: name, Server: server, IsTemporary: true}
			if isTimeout(err) {
				lastErr.IsTimeout = true
				lastErr.Err = fmt.Sprintf("%s query got no answer within %v", dns.TypeToString[qtype], r.timeout)
			} else {
				lastErr.Err = fmt.Sprintf("%s query failed: %v", dns.TypeToString[qtype], err)
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return r.entry(resp, server, qtype), nil
		default:
			lastErr = &net.DNSError{
				Err:         fmt.Sprintf("%s query answered %s", dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode]),
				Name:        name,
				Server:      server,
				IsTemporary: true,
			}
		}
	}
	if lastErr == nil {
		lastErr = &net.DNSError{Err: "no DNS servers configured", Name: name, IsTemporary: true}
	}
	return cacheEntry{}, lastErr
}

// ask sends one query to server over UDP, and over TCP if the UDP answer
// was truncated.
func (r *Resolver) ask(ctx context.Context, server, qname string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsBufferSize, false)

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	udp := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: ednsBufferSize}
	resp, _, err := udp.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, err
	}
	if !resp.Truncated {
		return resp, nil
	}
	tcp := &dns.Client{Net: "tcp", Timeout: r.timeout}
	resp, _, err = tcp.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, fmt.Errorf("retrying truncated answer over TCP: %w", err)
	}
	return resp, nil
}

// entry turns an answer into a cache entry: the records of the asked type
// (a CNAME chain the server followed is dropped, but its TTLs count) and the
// time they expire.
func (r *Resolver) entry(resp *dns.Msg, server string, qtype uint16) cacheEntry {
	e := cacheEntry{server: server}
	var ttl time.Duration
	if resp.Rcode == dns.RcodeSuccess {
		first := true
		for _, rr := range resp.Answer {
			t := time.Duration(rr.Header().Ttl) * time.Second
			if first || t < ttl {
				ttl, first = t, false
			}
			if rr.Header().Rrtype == qtype {
				e.answers = append(e.answers, rr)
			}
		}
	}
	if len(e.answers) > 0 {
		ttl = min(ttl, maxPositiveTTL)
	} else {
		// RFC 2308 section 5: a negative answer lives for the smaller of
		// the SOA's TTL and its MINIMUM field.
		ttl = defaultNegativeTTL
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
			}
		}
		ttl = min(ttl, maxNegativeTTL)
	}
	e.expires = r.now().Add(ttl)
	return e
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}
