package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"outbound/spf"
)

// spfCommand runs `outbound spf check`: it evaluates the SPF policy locally
// (no running server needed) with the configured resolvers.
func (e *cliEnv) spfCommand(args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return usagef("usage: outbound spf check DOMAIN [--route default | --include DOMAIN | --ip IP]... [--json]")
	}
	fs := newFlags("spf check")
	route := fs.String("route", "", "check against a route's upstream (\"default\")")
	include := fs.String("include", "", "check against this SPF include domain")
	var ips stringList
	fs.Var(&ips, "ip", "check against this egress IP (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound spf check DOMAIN [--route default | --include DOMAIN | --ip IP]... [--json]")
	}
	cfg, err := loadConfig(e.configPath)
	if err != nil {
		return err
	}
	var id spf.Identity
	switch {
	case *include != "" || len(ips) > 0:
		id = spf.Identity{Name: *include, Include: *include}
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil {
				return usagef("--ip %q is not an IP address", s)
			}
			id.IPs = append(id.IPs, ip)
		}
		if id.Name == "" {
			id.Name = "the given IPs"
		}
	case *route == "" || *route == "default":
		id = routeDefault(cfg.DefaultRoute).Identity()
	default:
		return fmt.Errorf("route %q is not configured; use --route default, --include or --ip", *route)
	}
	if id.Include == "" && len(id.IPs) == 0 {
		return errors.New("the upstream has no SPF identity: set default_route.spf_include or pass --include/--ip")
	}
	resolver, err := spf.NewResolver(cfg.DNS.Servers, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dns.servers: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := (&spf.Checker{Resolver: resolver}).Check(ctx, pos[0], id)
	if *asJSON {
		if err := printJSON(e.stdout, spfCheckView(res, id.Name)); err != nil {
			return err
		}
		if res.Verdict != spf.Pass {
			return exitError{code: 1}
		}
		return nil
	}
	fmt.Fprintf(e.stdout, "domain:   %s\nupstream: %s\n", res.Domain, id.Name)
	fmt.Fprintln(e.stdout, "records:")
	for _, r := range res.Records {
		fmt.Fprintf(e.stdout, "  %s: %s\n", r.Domain, r.Text)
	}
	if len(res.TestedIPs) > 0 {
		fmt.Fprintf(e.stdout, "tested:   %v\n", res.TestedIPs)
	}
	fmt.Fprintf(e.stdout, "verdict:  %s\n", res.Verdict)
	if res.Verdict != spf.Pass {
		fmt.Fprintf(e.stdout, "fix:      %s\n", res.Fix)
		return exitError{code: 1}
	}
	return nil
}

// spfCheckJSON is what `spf check --json` prints.
type spfCheckJSON struct {
	Domain    string       `json:"domain"`
	Upstream  string       `json:"upstream"`
	Verdict   string       `json:"verdict"`
	Records   []spf.Record `json:"records"`
	TestedIPs []string     `json:"tested_ips"`
	Fix       string       `json:"fix,omitempty"`
	Error     string       `json:"error,omitempty"`
}

func spfCheckView(res spf.Result, upstream string) spfCheckJSON {
	v := spfCheckJSON{Domain: res.Domain, Upstream: upstream, Verdict: string(res.Verdict),
		Records: res.Records, TestedIPs: []string{}, Fix: res.Fix}
	if v.Records == nil {
		v.Records = []spf.Record{}
	}
	for _, ip := range res.TestedIPs {
		v.TestedIPs = append(v.TestedIPs, ip.String())
	}
	if res.Err != nil {
		v.Error = res.Err.Error()
	}
	return v
}
