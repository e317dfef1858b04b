package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"outbound/admin"
	"outbound/config"
	"outbound/delivery"
	"outbound/doctor"
	"outbound/route"
	"outbound/smarthost"
	"outbound/spf"
)

const doctorUsage = "usage: outbound [-config FILE] doctor [--min-free SIZE|PERCENT%] [--json]"

// doctorCommand runs `outbound doctor`: every check of package doctor
// against the relay the configuration describes, one ✓/✗ line each with
// the fix, or the list as JSON. It exits 1 when any check fails, so that
// it can gate a deployment script.
func (e *cliEnv) doctorCommand(args []string) error {
	fs := newFlags("doctor")
	asJSON := fs.Bool("json", false, "print JSON")
	minFree := fs.String("min-free", "1GiB", "free space data_dir needs: a size (1GiB, 500MiB) or a share of the disk (5%)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("%s", doctorUsage)
	}
	cfg, err := loadConfig(e.configPath)
	if err != nil {
		return err
	}
	opts, early, err := doctorOptions(e, cfg, *minFree)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results := append(early, doctor.Run(ctx, opts)...)
	if *asJSON {
		if err := printJSON(e.stdout, results); err != nil {
			return err
		}
	} else {
		printDoctor(e, results)
	}
	if doctor.Failed(results) {
		return exitError{code: 1}
	}
	return nil
}

// doctorOptions points the checks at the relay cfg describes. early holds
// what failed before any check could run (an admin API out of reach):
// the checks that need the API are then left out, not failed twice.
func doctorOptions(e *cliEnv, cfg config.Config, minFree string) (doctor.Options, []doctor.Result, error) {
	o := doctor.Options{
		Hostname:    cfg.Hostname,
		ImplicitTLS: dialableAddr(cfg.Submission.ImplicitTLS),
		StartTLS:    dialableAddr(cfg.Submission.StartTLS),
		DataDir:     cfg.DataDir,
		UID:         os.Getuid(),
	}
	// The DNS the relay asks ([dns] servers), so that doctor sees the
	// records the relay sees.
	resolver, err := spf.NewResolver(cfg.DNS.Servers, 5*time.Second)
	if err != nil {
		return o, nil, fmt.Errorf("dns.servers: %w", err)
	}
	o.LookupTXT = resolver.LookupTXT
	o.LookupIP = func(ctx context.Context, host string) ([]net.IP, error) {
		addrs, err := resolver.LookupIPAddr(ctx, host)
		ips := make([]net.IP, 0, len(addrs))
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
		return ips, err
	}
	// A private ACME CA's root (say step-ca's) is what the listeners'
	// chain verifies against, besides the system's roots.
	if cfg.ACME.Enabled && cfg.ACME.CAFile != "" {
		roots, err := smarthost.RootCAs(cfg.ACME.CAFile)
		if err != nil {
			return o, nil, fmt.Errorf("acme.%w", err)
		}
		o.Roots = roots
	}
	if strings.HasSuffix(minFree, "%") {
		p, err := strconv.ParseFloat(strings.TrimSuffix(minFree, "%"), 64)
		if err != nil || p <= 0 || p >= 100 {
			return o, nil, usagef("--min-free %q: give a size (1GiB) or a percentage (5%%)", minFree)
		}
		o.MinFreePercent = p
	} else {
		n, err := parseSize(minFree)
		if err != nil {
			return o, nil, usagef("--min-free %q: %v", minFree, err)
		}
		o.MinFree = n
	}
	o.KeyFiles = []string{
		filepath.Join(cfg.DataDir, "outbound.db"),
		filepath.Join(cfg.DataDir, "secrets.key"),
		filepath.Join(cfg.DataDir, "admin.token"),
		filepath.Join(cfg.DataDir, "tls", "key.pem"),
	}
	if cfg.TLS.Key != "" {
		o.KeyFiles = append(o.KeyFiles, cfg.TLS.Key)
	}
	if cfg.Admin.Listen != "" {
		o.AdminAddr = dialableAddr(cfg.Admin.Listen)
		o.AdminExposed = adminServesTLS(cfg.Admin.Listen)
	}
	o.HTTPListeners = doctorHTTPListeners(cfg)
	// The capture route sends nothing: there is no upstream to test. The
	// admin API has no test of the running relay's default route, so the
	// file's is tested, and the result says so.
	if cfg.DefaultRoute.Host != "" && !cfg.Capture() {
		o.DefaultRoute = func(ctx context.Context) delivery.ConnectionReport {
			return defaultRouteTest(ctx, cfg)
		}
		o.DefaultRouteFrom = e.configPath
		if o.DefaultRouteFrom == "" {
			o.DefaultRouteFrom = "the configuration"
		}
	}
	var early []doctor.Result
	c, err := e.client()
	if err == nil {
		// One call first, so that a relay out of reach is one failure.
		_, err = c.Smarthosts()
		var apiErr *admin.Error
		if errors.As(err, &apiErr) {
			err = nil // it answered; the checks report what
		}
	}
	if err != nil {
		early = append(early, doctor.Result{Name: "admin API", Detail: err.Error(),
			Fix: "start `outbound serve` with this configuration; smarthosts, SPF, DKIM and the certificate's renewal are not checked without it"})
	} else {
		o.API = c
	}
	return o, early, nil
}

// doctorHTTPListeners are the HTTP listeners configured besides the admin
// one, each HTTPS by the admin listener's rule (serve.go): anywhere but
// loopback.
func doctorHTTPListeners(cfg config.Config) []doctor.HTTPListener {
	var out []doctor.HTTPListener
	for _, l := range []struct{ section, listen string }{
		{"provider_webhooks", cfg.ProviderWebhooks.Listen},
		{"autoconfig", cfg.Autoconfig.Listen},
		{"send_api", cfg.SendAPI.Listen},
	} {
		if l.listen != "" {
			out = append(out, doctor.HTTPListener{Section: l.section, Addr: dialableAddr(l.listen), TLS: adminServesTLS(l.listen)})
		}
	}
	return out
}

// defaultRouteTest runs the default route's connection test with the
// configured settings, as delivery would use them.
func defaultRouteTest(ctx context.Context, cfg config.Config) delivery.ConnectionReport {
	fail := func(err error) delivery.ConnectionReport {
		return delivery.ConnectionReport{Target: "default_route",
			Steps: []delivery.ConnectionStep{{Name: "connect", Status: "failed", Error: err.Error()}}}
	}
	ropts, err := routeOptions(cfg, nil, nil)
	if err != nil {
		return fail(err)
	}
	r, err := route.New(ropts)
	if err != nil {
		return fail(err)
	}
	up, err := r.Upstream("")
	if err != nil {
		return fail(err)
	}
	return delivery.ConnectionTest(ctx, up, cfg.Hostname, cfg.Delivery.ConnectTimeout.D())
}

// dialableAddr is where to reach a listener on listen from this host: a
// listener on every interface is reached on loopback.
func dialableAddr(listen string) string {
	if listen == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// parseSize reads "1GiB", "500MiB", "2GB" or a plain number of bytes.
func parseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || n < 0 {
		return 0, errors.New("give a size such as 1GiB, 500MiB or a percentage such as 5%")
	}
	return uint64(n * float64(mult)), nil
}

// printDoctor prints one line per check, the fix under each failure, and
// a count.
func printDoctor(e *cliEnv, rs []doctor.Result) {
	failed := 0
	for _, r := range rs {
		mark := "✓"
		if !r.OK {
			mark = "✗"
			failed++
		}
		fmt.Fprintf(e.stdout, "%s %s: %s\n", mark, r.Name, r.Detail)
		if !r.OK && r.Fix != "" {
			fmt.Fprintf(e.stdout, "    fix: %s\n", r.Fix)
		}
	}
	if failed == 0 {
		fmt.Fprintf(e.stdout, "\nall %d checks passed\n", len(rs))
	} else {
		fmt.Fprintf(e.stdout, "\n%d of %d checks failed\n", failed, len(rs))
	}
}
