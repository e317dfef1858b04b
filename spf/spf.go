// Package spf answers one question: does domain D's SPF policy authorize
// the upstream U that its mail will leave through? It gives a verdict and,
// when the answer is not "pass", the exact DNS change that fixes it.
//
// An upstream is known by its SPF identity ([Identity]): the include domain
// its customers are told to add (include:_spf.eu.mailgun.org) and/or the
// egress IPs it sends from. [Checker.Check] learns the addresses behind the
// include by walking its SPF records (include:, redirect=, ip4:, ip6:, a,
// mx), samples up to [MaxSamples] of them, and evaluates D's policy for
// each sample with blitiri.com.ar/go/spf, exactly as a receiving server
// would for mail from postmaster@D. D authorizes U only if every sample
// passes; otherwise the first sample that does not pass gives the verdict.
//
// DNS goes through [Resolver], a caching client on github.com/miekg/dns, so
// checking every message costs a handful of queries per TTL, not per
// message. Temporary DNS trouble gives "temperror", never a wrong "fail".
package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	blitiri "blitiri.com.ar/go/spf"
	"github.com/miekg/dns"
)

// Identity is an upstream's SPF identity: the include domain whose SPF
// record authorizes the addresses it sends from, and/or explicit egress
// IPs. At least one of Include and IPs must be set.
type Identity struct {
	// Name names the upstream in messages, e.g. "Mailgun EU".
	Name string
	// Include is the domain senders add as include:<Include>, e.g.
	// "_spf.eu.mailgun.org". Empty when the upstream has no such domain.
	Include string
	// IPs are addresses the upstream is known to send from, checked in
	// addition to the ones its Include authorizes.
	IPs []net.IP
}

func (id Identity) displayName() string {
	switch {
	case id.Name != "":
		return id.Name
	case id.Include != "":
		return id.Include
	}
	return "the upstream"
}

// Verdict is an SPF result (RFC 7208 section 2.6), with the values of
// blitiri.com.ar/go/spf's Result.
type Verdict string

// The verdicts.
const (
	Pass      = Verdict(blitiri.Pass)
	Fail      = Verdict(blitiri.Fail)
	SoftFail  = Verdict(blitiri.SoftFail)
	Neutral   = Verdict(blitiri.Neutral)
	None      = Verdict(blitiri.None)
	TempError = Verdict(blitiri.TempError)
	PermError = Verdict(blitiri.PermError)
)

// Record is one SPF record seen while evaluating a domain's policy.
type Record struct {
	// Domain is the name the record was published at.
	Domain string
	// Text is the record, its TXT strings joined.
	Text string
}

// Result is the answer of Check.
type Result struct {
	// Domain is the sender domain checked, lowercase, without a final dot.
	Domain string
	// Verdict is "pass" when every sampled upstream address passed, else
	// the verdict of the first one that did not.
	Verdict Verdict
	// Records are the SPF records read during evaluation, in the order
	// first seen: the domain's own, then those of its includes and
	// redirects.
	Records []Record
	// TestedIPs are the upstream addresses evaluated, in order; when the
	// verdict is not "pass", the last one is the address that did not pass.
	TestedIPs []net.IP
	// Fix is empty on "pass"; otherwise it says what to change, e.g.
	// "example.com's SPF does not authorize Mailgun EU; add
	// include:_spf.eu.mailgun.org to its TXT record".
	Fix string
	// Err is the underlying error of a temperror or permerror, may be nil.
	Err error
}

// Checker checks sender domains against upstreams. The zero value uses the
// system resolver (net.DefaultResolver), without caching.
type Checker struct {
	// Resolver answers the DNS queries; nil means net.DefaultResolver.
	Resolver *Resolver
}

func (c *Checker) resolver() blitiri.DNSResolver {
	if c == nil || c.Resolver == nil {
		return net.DefaultResolver
	}
	return c.Resolver
}

// Check evaluates domain's SPF policy for the addresses upstream id sends
// from: its explicit IPs first, then a sample spread over the ip4/ip6
// ranges and a/mx hosts its Include's SPF records authorize, at most
// MaxSamples in all. The domain authorizes the upstream if every sample
// passes; Check stops at the first sample that does not.
func (c *Checker) Check(ctx context.Context, domain string, id Identity) Result {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	res := Result{Domain: domain}
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" || strings.Contains(domain, "@") {
		res.Verdict = PermError
		res.Err = fmt.Errorf("%q is not a domain name", domain)
		res.Fix = fmt.Sprintf("%q is not a domain name; SPF can only be checked for the domain part of an address", domain)
		return res
	}
	r := c.resolver()

	samples := make([]net.IP, 0, MaxSamples)
	explicit := map[string]bool{}
	for _, ip := range id.IPs {
		if len(samples) == MaxSamples || ip.To16() == nil || explicit[ip.String()] {
			continue
		}
		explicit[ip.String()] = true
		samples = append(samples, ip)
	}
	if id.Include != "" {
		v4, v6, err := upstreamAddresses(ctx, r, id.Include)
		if err != nil && len(samples) == 0 {
			res.Err = fmt.Errorf("reading the SPF records of %s's include %s: %w", id.displayName(), id.Include, err)
			res.Verdict = PermError
			var derr *net.DNSError
			if errors.As(err, &derr) {
				res.Verdict = TempError
			}
			res.Fix = fmt.Sprintf("cannot check %s's SPF for %s: %s", domain, id.displayName(), describeUpstreamError(id, err))
			return res
		}
		for _, ip := range sample(v4, v6, MaxSamples-len(samples)) {
			if !explicit[ip.String()] {
				samples = append(samples, ip)
			}
		}
	}
	if len(samples) == 0 {
		res.Verdict = PermError
		res.Err = errors.New("upstream has no SPF identity")
		res.Fix = fmt.Sprintf("cannot check %s's SPF for %s: the upstream has neither an SPF include domain nor egress IPs configured",
			domain, id.displayName())
		return res
	}

	rec := &recorder{r: r, seen: map[Record]bool{}}
	for _, ip := range samples {
		res.TestedIPs = append(res.TestedIPs, ip)
		v, err := blitiri.CheckHostWithSender(ip, "", "postmaster@"+domain,
			blitiri.WithResolver(rec), blitiri.WithContext(ctx))
		if v == blitiri.Pass {
			continue
		}
		res.Verdict = Verdict(v)
		if v == blitiri.TempError || v == blitiri.PermError {
			res.Err = err
		}
		res.Fix = rec.fix(domain, id, v, err, ip, explicit[ip.String()])
		break
	}
	if res.Verdict == "" {
		res.Verdict = Pass
	}
	res.Records = rec.records
	return res
}

// recorder passes queries through to a resolver, keeping the SPF records
// that blitiri fetches (it asks for TXT only to read SPF records) and the
// names that had none.
type recorder struct {
	r        blitiri.DNSResolver
	records  []Record
	seen     map[Record]bool
	noRecord []string
}

func (rec *recorder) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := rec.r.LookupTXT(ctx, name)
	found := false
	for _, t := range txts {
		if l := strings.ToLower(t); l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			found = true
			r := Record{Domain: strings.TrimSuffix(name, "."), Text: t}
			if !rec.seen[r] {
				rec.seen[r] = true
				rec.records = append(rec.records, r)
			}
		}
	}
	if !found && !isTemporary(err) {
		rec.noRecord = append(rec.noRecord, strings.TrimSuffix(name, "."))
	}
	return txts, err
}

func (rec *recorder) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return rec.r.LookupMX(ctx, name)
}

func (rec *recorder) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return rec.r.LookupIPAddr(ctx, host)
}

func (rec *recorder) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return rec.r.LookupAddr(ctx, addr)
}

func isTemporary(err error) bool {
	var derr *net.DNSError
	return errors.As(err, &derr) && derr.Temporary()
}

// fix says what to change for a verdict other than pass, ip being the
// upstream address that got it.
func (rec *recorder) fix(domain string, id Identity, v blitiri.Result, err error, ip net.IP, explicitIP bool) string {
	name := id.displayName()
	switch v {
	case blitiri.Fail, blitiri.SoftFail, blitiri.Neutral:
		term := "include:" + id.Include
		if explicitIP || id.Include == "" {
			term = ipTerm(ip)
		}
		return fmt.Sprintf("%s's SPF does not authorize %s; add %s to its TXT record", domain, name, term)
	case blitiri.None:
		terms := make([]string, 0, 1+len(id.IPs))
		if id.Include != "" {
			terms = append(terms, "include:"+id.Include)
		}
		for _, ip := range id.IPs {
			if ip.To16() != nil {
				terms = append(terms, ipTerm(ip))
			}
		}
		return fmt.Sprintf(`%s publishes no SPF record; add a TXT record "v=spf1 %s ~all"`, domain, strings.Join(terms, " "))
	case blitiri.TempError:
		var derr *net.DNSError
		if errors.As(err, &derr) {
			return fmt.Sprintf("%s's SPF could not be checked: the DNS lookup of %s failed temporarily (%s); try again later",
				domain, strings.TrimSuffix(derr.Name, "."), derr.Err)
		}
		return fmt.Sprintf("%s's SPF could not be checked: a DNS lookup failed temporarily (%v); try again later", domain, err)
	default: // PermError
		return fmt.Sprintf("%s's SPF record is broken: %s", domain, rec.brokenBecause(err))
	}
}

// brokenBecause explains a permerror and how to repair it.
func (rec *recorder) brokenBecause(err error) string {
	switch {
	case errors.Is(err, blitiri.ErrLookupLimitReached):
		return "evaluating it takes more than 10 DNS lookups (every include, a, mx, ptr, exists and redirect counts, also inside included records); " +
			"remove includes that are no longer used, or replace some with their ip4:/ip6: ranges"
	case errors.Is(err, blitiri.ErrVoidLookupLimitReached):
		return "more than 2 of its DNS lookups find nothing (names that do not exist or have no records); " +
			"remove the include, a or mx terms that point at them"
	case errors.Is(err, blitiri.ErrMultipleRecords):
		return "more than one TXT record starts with v=spf1; merge them into a single record"
	case errors.Is(err, blitiri.ErrNoResult):
		missing := "a domain"
		if n := len(rec.noRecord); n > 0 {
			missing = rec.noRecord[n-1]
		}
		return fmt.Sprintf("it includes or redirects to %s, which publishes no SPF record; remove that term or point it at a domain that has one", missing)
	case errors.Is(err, blitiri.ErrTooManyMXRecords):
		return "an mx term points at a domain with more than 10 MX records; list those servers with ip4:/ip6: instead"
	case errors.Is(err, blitiri.ErrUnknownField):
		return "it contains a term that is not SPF syntax (a misspelt mechanism such as \"inlcude:\", or a stray character); correct or remove it"
	case errors.Is(err, blitiri.ErrInvalidIP), errors.Is(err, blitiri.ErrInvalidMask):
		return "an ip4:, ip6:, a or mx term has an invalid address or prefix length; correct it"
	case errors.Is(err, blitiri.ErrInvalidMacro):
		return "it contains an invalid macro (%{...}); correct it"
	case errors.Is(err, blitiri.ErrInvalidDomain):
		return "it contains an invalid domain name, or more than one redirect=; correct it"
	case err != nil:
		return err.Error()
	}
	return "it cannot be evaluated"
}

func ipTerm(ip net.IP) string {
	if ip.To4() != nil {
		return "ip4:" + ip.String()
	}
	return "ip6:" + ip.String()
}
