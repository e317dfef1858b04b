package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	blitiri "blitiri.com.ar/go/spf"
)

// Limits of the walk through an upstream's SPF records.
const (
	// MaxSamples is the most upstream addresses a Check evaluates.
	MaxSamples = 8
	// maxUpstreamLookups bounds the DNS lookups spent learning an
	// upstream's addresses. It is above SPF's limit of 10 on purpose: the
	// upstream's record only has to be readable, not pass a receiver.
	maxUpstreamLookups = 30
	// maxMXHosts is how many MX hosts of an mx mechanism are resolved, as
	// in RFC 7208 section 4.6.4.
	maxMXHosts = 10
)

// errNoUpstreamRecord means the upstream's include domain has no SPF record.
var errNoUpstreamRecord = errors.New("publishes no SPF record")

// errNoUpstreamAddresses means the upstream's SPF records list no address
// ranges that can be sampled (only macros, exists or ptr, say).
var errNoUpstreamAddresses = errors.New("authorizes no ip4/ip6 range, a or mx host that can be sampled")

// upstreamWalk collects the addresses an upstream's SPF records authorize:
// the first address of every ip4/ip6 range, and the addresses of a and mx
// hosts, through include: and redirect=, in record order.
type upstreamWalk struct {
	ctx      context.Context
	resolver blitiri.DNSResolver
	lookups  int
	visited  map[string]bool
	v4, v6   []net.IP
	seen     map[string]bool
	// tempErr is the first temporary DNS failure met on the way.
	tempErr error
}

// upstreamAddresses walks the SPF records of include and returns the
// addresses found, IPv4 first. With none found, the error says why: a
// temporary DNS failure (*net.DNSError), errNoUpstreamRecord or
// errNoUpstreamAddresses.
func upstreamAddresses(ctx context.Context, r blitiri.DNSResolver, include string) (v4, v6 []net.IP, err error) {
	w := &upstreamWalk{
		ctx:      ctx,
		resolver: r,
		visited:  map[string]bool{},
		seen:     map[string]bool{},
	}
	if err := w.record(include, 0); err != nil {
		return nil, nil, err
	}
	if len(w.v4)+len(w.v6) == 0 {
		if w.tempErr != nil {
			return nil, nil, w.tempErr
		}
		return nil, nil, errNoUpstreamAddresses
	}
	return w.v4, w.v6, nil
}

// record walks the SPF record of domain. Only a failure to read the
// top-level record is returned; below it, failures just leave ranges out.
func (w *upstreamWalk) record(domain string, depth int) error {
	key := strings.ToLower(strings.TrimSuffix(domain, "."))
	if w.visited[key] || depth > 10 || !w.spend() {
		return nil
	}
	w.visited[key] = true

	txts, err := w.resolver.LookupTXT(w.ctx, domain)
	if err != nil {
		var derr *net.DNSError
		if errors.As(err, &derr) && derr.IsNotFound {
			err = errNoUpstreamRecord
		} else if w.tempErr == nil {
			w.tempErr = err
		}
		if depth == 0 {
			return err
		}
		return nil
	}
	var record string
	for _, t := range txts {
		if l := strings.ToLower(t); l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			record = t
			break
		}
	}
	if record == "" {
		if depth == 0 {
			return errNoUpstreamRecord
		}
		return nil
	}

	var redirect string
	hasAll := false
	for _, term := range strings.Fields(record) {
		lterm := strings.ToLower(term)
		if strings.HasPrefix(lterm, "redirect=") {
			redirect = term[len("redirect="):]
			continue
		}
		qualifier := byte('+')
		if strings.ContainsRune("+-~?", rune(lterm[0])) {
			qualifier, term, lterm = lterm[0], term[1:], lterm[1:]
		}
		if lterm == "all" {
			hasAll = true
			continue
		}
		// Only terms that authorize (qualifier "+") give addresses the
		// upstream sends from; macros cannot be expanded without a sender.
		if qualifier != '+' || strings.Contains(term, "%") {
			continue
		}
		switch {
		case strings.HasPrefix(lterm, "ip4:") || strings.HasPrefix(lterm, "ip6:"):
			w.addRange(term[4:])
		case strings.HasPrefix(lterm, "include:"):
			_ = w.record(term[len("include:"):], depth+1)
		case lterm == "a" || strings.HasPrefix(lterm, "a:") || strings.HasPrefix(lterm, "a/"):
			w.addHost(targetDomain(term[1:], domain))
		case lterm == "mx" || strings.HasPrefix(lterm, "mx:") || strings.HasPrefix(lterm, "mx/"):
			w.addMX(targetDomain(term[2:], domain))
		}
	}
	// A redirect is ignored when the record has an "all" (RFC 7208 6.1).
	if redirect != "" && !hasAll && !strings.Contains(redirect, "%") {
		_ = w.record(redirect, depth+1)
	}
	return nil
}

// spend counts one DNS lookup, reporting false once the budget is spent.
func (w *upstreamWalk) spend() bool {
	if w.lookups >= maxUpstreamLookups || w.ctx.Err() != nil {
		return false
	}
	w.lookups++
	return true
}

// targetDomain returns the domain of an a or mx mechanism given what
// follows its name (":domain/cidr", "/cidr" or ""), defaulting to current.
func targetDomain(rest, current string) string {
	rest, _, _ = strings.Cut(rest, "/")
	if d, ok := strings.CutPrefix(rest, ":"); ok && d != "" {
		return d
	}
	return current
}

// addRange adds the first address of an ip4/ip6 range (or the address).
func (w *upstreamWalk) addRange(s string) {
	if strings.Contains(s, "/") {
		if _, n, err := net.ParseCIDR(s); err == nil {
			w.add(n.IP)
		}
		return
	}
	if ip := net.ParseIP(s); ip != nil {
		w.add(ip)
	}
}

func (w *upstreamWalk) addHost(host string) {
	if !w.spend() {
		return
	}
	addrs, err := w.resolver.LookupIPAddr(w.ctx, host)
	w.noteErr(err)
	for _, a := range addrs {
		w.add(a.IP)
	}
}

func (w *upstreamWalk) addMX(domain string) {
	if !w.spend() {
		return
	}
	mxs, err := w.resolver.LookupMX(w.ctx, domain)
	w.noteErr(err)
	for i, mx := range mxs {
		if i == maxMXHosts {
			break
		}
		addrs, err := w.resolver.LookupIPAddr(w.ctx, mx.Host)
		w.noteErr(err)
		for _, a := range addrs {
			w.add(a.IP)
		}
	}
}

func (w *upstreamWalk) noteErr(err error) {
	var derr *net.DNSError
	if err != nil && w.tempErr == nil && errors.As(err, &derr) && derr.Temporary() {
		w.tempErr = err
	}
}

func (w *upstreamWalk) add(ip net.IP) {
	k := ip.String()
	if w.seen[k] {
		return
	}
	w.seen[k] = true
	if v4 := ip.To4(); v4 != nil {
		w.v4 = append(w.v4, v4)
	} else {
		w.v6 = append(w.v6, ip)
	}
}

// sample picks at most n addresses spread evenly over v4 and v6, giving
// each family that has addresses at least one place.
func sample(v4, v6 []net.IP, n int) []net.IP {
	if n <= 0 {
		return nil
	}
	total := len(v4) + len(v6)
	if total <= n {
		return append(append([]net.IP(nil), v4...), v6...)
	}
	n6 := n * len(v6) / total
	if len(v6) > 0 && n6 == 0 {
		n6 = 1
	}
	n4 := n - n6
	if len(v4) > 0 && n4 == 0 {
		n4, n6 = 1, n6-1
	}
	return append(spread(v4, n4), spread(v6, n6)...)
}

// spread picks n of ips at even intervals, keeping their order.
func spread(ips []net.IP, n int) []net.IP {
	if n >= len(ips) {
		return ips
	}
	out := make([]net.IP, 0, n)
	for i := range n {
		out = append(out, ips[i*len(ips)/n])
	}
	return out
}

// describeUpstreamError says why an upstream's addresses are unknown.
func describeUpstreamError(id Identity, err error) string {
	name := id.displayName()
	var derr *net.DNSError
	switch {
	case errors.As(err, &derr):
		return fmt.Sprintf("the DNS lookup of %s, the SPF include of %s, failed temporarily (%s); try again later",
			derr.Name, name, derr.Err)
	case errors.Is(err, errNoUpstreamRecord):
		return fmt.Sprintf("%s, the SPF include of %s, publishes no SPF record, so the addresses %s sends from are unknown; check the SPF include set for %s",
			id.Include, name, name, name)
	default:
		return fmt.Sprintf("the SPF record of %s, the SPF include of %s, %s, so the addresses %s sends from are unknown; configure its egress IPs instead",
			id.Include, name, err, name)
	}
}
