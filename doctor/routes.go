package doctor

import (
	"context"
	"fmt"
	"sort"

	"outbound/delivery"
)

// checkRoutes runs the connection test of the default route and of every
// smarthost: the test delivery itself would fail.
func checkRoutes(ctx context.Context, o *Options) []Result {
	var out []Result
	if o.DefaultRoute != nil {
		out = append(out, checkDefaultRoute(ctx, o))
	}
	if o.API == nil {
		return out
	}
	hosts, err := o.API.Smarthosts()
	if err != nil {
		return append(out, fail("smarthosts", err.Error(), "start `outbound serve` and check [admin] listen"))
	}
	for _, h := range hosts {
		res, err := o.API.TestSmarthost(h.Name)
		if err != nil {
			out = append(out, fail("smarthost "+h.Name, err.Error(), "check `outbound smarthost test "+h.Name+"`"))
			continue
		}
		if res.Test == nil {
			out = append(out, fail("smarthost "+h.Name, "the relay answered without a connection test", "check `outbound smarthost test "+h.Name+"`"))
			continue
		}
		out = append(out, connectionResult("smarthost "+h.Name, *res.Test,
			"fix it with `outbound smarthost update "+h.Name+"` (host, port, --tls, credentials, --ca-file)"))
	}
	return out
}

// checkDefaultRoute runs the default route's connection test and says
// whose settings it tested (DefaultRouteFrom): the running relay keeps
// the ones it started with.
// The name stays "default route", which scripts reading --json match.
func checkDefaultRoute(ctx context.Context, o *Options) Result {
	r := connectionResult("default route", o.DefaultRoute(ctx),
		"fix [default_route] in the configuration (host, port, tls, credentials), then restart")
	if o.DefaultRouteFrom != "" {
		r.Detail += fmt.Sprintf("; tested with [default_route] as %s has it now: a relay started before the file was last edited sends with the settings it started with until it restarts",
			o.DefaultRouteFrom)
	}
	return r
}

// connectionResult turns a connection test's report into a result: the
// failing step and its reply are the detail.
func connectionResult(name string, rep delivery.ConnectionReport, fix string) Result {
	if rep.OK {
		return pass(name, "connection test passed: "+rep.Target)
	}
	detail := "connection test of " + rep.Target + " failed"
	if s := rep.Failed(); s != nil {
		detail = fmt.Sprintf("%s failed at %s", rep.Target, s.Name)
		if s.Error != "" {
			detail += ": " + s.Error
		}
		if s.Reply != "" {
			detail += " (" + s.Reply + ")"
		}
		if s.Hint != "" {
			fix = s.Hint + "; " + fix
		}
	}
	return fail(name, detail, fix)
}

// checkSPF checks, for each domain a user may send from, that its SPF
// authorizes the upstream of the user's route; the fix is the record to
// publish. A domain shared by users of one route is reported once.
// aligned maps each sender domain checked to whether its SPF authorizes
// every route its users take, for the DMARC check.
func checkSPF(o *Options) (out []Result, aligned map[string]bool) {
	aligned = map[string]bool{}
	if o.API == nil {
		return nil, aligned
	}
	users, err := o.API.Users()
	if err != nil {
		return []Result{fail("SPF", err.Error(), "start `outbound serve` and check [admin] listen")}, aligned
	}
	seen := map[string]bool{}
	for _, u := range users {
		rep, err := o.API.UserSPF(u.Name)
		if err != nil {
			out = append(out, fail("SPF of user "+u.Name, err.Error(), "check `outbound spf check DOMAIN`"))
			continue
		}
		for _, d := range rep.Domains {
			if ok, found := aligned[d.Domain]; !found || ok {
				aligned[d.Domain] = d.Aligned
			}
			key := d.Domain + "\x00" + rep.Route
			if seen[key] {
				continue
			}
			seen[key] = true
			name := fmt.Sprintf("SPF of %s authorizes %s (route %s)", d.Domain, rep.Upstream, rep.Route)
			if d.Aligned {
				out = append(out, pass(name, "pass"))
				continue
			}
			detail := "verdict " + d.Verdict
			if d.Error != "" {
				detail += ": " + d.Error
			}
			for _, r := range d.Records {
				if r.Domain == d.Domain {
					detail += fmt.Sprintf("; published: %q", r.Text)
				}
			}
			out = append(out, fail(name, detail, d.Fix))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, aligned
}
