package admin

import (
	"context"
	"net/http"
	"strings"
	"time"

	"outbound/auth"
	"outbound/route"
	"outbound/spf"
)

// SPFChecker checks whether a sender domain's SPF authorizes an upstream
// (spf.Checker).
type SPFChecker interface {
	Check(ctx context.Context, domain string, id spf.Identity) spf.Result
}

var _ SPFChecker = (*spf.Checker)(nil)

// SPFReport is the answer to GET /api/users/{name}/spf: for each domain
// the user may send from, whether its SPF authorizes the upstream the
// user's mail leaves through, and if not, the exact change to make.
type SPFReport struct {
	User string `json:"user"`
	// Route is "default" or the smarthost the user is routed through.
	Route string `json:"route"`
	// Upstream names the upstream's SPF identity ("SendGrid", a host);
	// Include and IPs are what a domain's SPF must authorize.
	Upstream string   `json:"upstream"`
	Include  string   `json:"include,omitempty"`
	IPs      []string `json:"ips,omitempty"`
	// Policy is what the relay does with a domain that is not aligned
	// ("off", "warn", "enforce"); "off" also when the upstream has no SPF
	// identity, and then Domains is empty: there is nothing to check.
	Policy  string      `json:"policy"`
	Domains []SPFDomain `json:"domains"`
}

// SPFDomain is one sender domain's SPF check.
type SPFDomain struct {
	Domain string `json:"domain"`
	// Aligned says the domain's SPF authorizes the upstream (verdict "pass").
	Aligned bool   `json:"aligned"`
	Verdict string `json:"verdict"`
	// Fix is the exact record change to make; "" when aligned.
	Fix string `json:"fix,omitempty"`
	// Records are the SPF records read, the domain's own first.
	Records []SPFRecord `json:"records"`
	// Error is the DNS or syntax error behind a temperror or permerror.
	Error string `json:"error,omitempty"`
}

// SPFRecord is one SPF record and where it is published.
type SPFRecord struct {
	Domain string `json:"domain"`
	Text   string `json:"text"`
}

// senderDomains are the domains u may send from: its login's, then those
// of its allowed senders, each once, lowercase.
func senderDomains(u *auth.User) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range append([]string{u.Name}, u.AllowFrom...) {
		d := strings.TrimPrefix(s, "@")
		if i := strings.LastIndexByte(d, '@'); i >= 0 {
			d = d[i+1:]
		} else if s == u.Name {
			continue // a login that is not an address has no domain
		}
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// userSPF checks the SPF of every domain the user may send from against
// the upstream of its route, as the relay does at MAIL FROM.
func (a *api) userSPF(w http.ResponseWriter, r *http.Request) error {
	if a.SPF == nil {
		return &httpError{status: http.StatusNotImplemented, msg: "SPF checks are not configured on this server"}
	}
	u, err := a.Users.Get(r.PathValue("name"))
	if err != nil {
		return err
	}
	p := a.Routes.Policy(u)
	rep := SPFReport{User: u.Name, Route: viewUser(u).Route, Upstream: p.SPF.Name, Include: p.SPF.Include,
		Policy: string(p.SPFPolicy), Domains: []SPFDomain{}}
	for _, ip := range p.SPF.IPs {
		rep.IPs = append(rep.IPs, ip.String())
	}
	if rep.Route == route.DefaultName && rep.Upstream == "" {
		rep.Upstream = route.DefaultName
	}
	if p.SPF.Include == "" && len(p.SPF.IPs) == 0 {
		writeJSON(w, http.StatusOK, rep) // no identity: nothing to check against
		return nil
	}
	// DNS may be slow; the page waits for it, so bound the whole check.
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	for _, d := range senderDomains(u) {
		res := a.SPF.Check(ctx, d, p.SPF)
		sd := SPFDomain{Domain: res.Domain, Aligned: res.Verdict == spf.Pass, Verdict: string(res.Verdict),
			Fix: res.Fix, Records: []SPFRecord{}}
		for _, rec := range res.Records {
			sd.Records = append(sd.Records, SPFRecord{Domain: rec.Domain, Text: rec.Text})
		}
		if res.Err != nil {
			sd.Error = res.Err.Error()
		}
		rep.Domains = append(rep.Domains, sd)
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
