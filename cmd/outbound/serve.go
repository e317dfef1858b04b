package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	bolt "go.etcd.io/bbolt"

	"outbound/admin"
	"outbound/auth"
	"outbound/config"
	"outbound/delivery"
	"outbound/metrics"
	"outbound/provider"
	"outbound/queue"
	"outbound/quota"
	"outbound/relay"
	"outbound/smarthost"
	"outbound/spf"
)

func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// openDB opens the shared bbolt file. A short lock timeout turns "another
// outbound serve is running" into a clear error instead of a hang.
func openDB(dataDir string) (*bolt.DB, error) {
	path := filepath.Join(dataDir, "outbound.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%s is locked: is another `outbound serve` running with this data_dir?", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// Submissions and delivery outcomes are group-committed without any
	// timer (package groupcommit). What still uses bbolt's DB.Batch (a
	// quota Release after a failed write) would wait bbolt's default
	// 10 ms for company; 1 ms is plenty.
	db.MaxBatchDelay = time.Millisecond
	return db, nil
}

func serve(configPath string) error {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	srv, err := start(cfg, log)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				srv.reloadCertificate(log)
				continue
			}
			log.Info("shutting down", "signal", s.String())
			srv.stop()
			return nil
		case err := <-srv.failed:
			log.Error("shutting down", "err", err)
			srv.stop()
			return err
		}
	}
}

// reloadCertificate answers SIGHUP: new connections get the certificate
// now in the files; if it does not load, the current one stays.
func (s *server) reloadCertificate(log *slog.Logger) {
	leaf, err := s.cert.reload()
	if err != nil {
		log.Error("certificate reload failed; keeping the current certificate", "err", err)
		return
	}
	log.Info("certificate reloaded", "path", s.cert.path, "subject", leaf.Subject.CommonName,
		"names", leaf.DNSNames, "not_after", leaf.NotAfter)
}

// server is a running relay: listeners, delivery workers, admin API.
type server struct {
	db        *bolt.DB
	users     *auth.Store
	queue     *queue.Queue
	quota     *quota.Store
	cert      *listenerCert
	addrs     map[string]string // "implicit", "starttls", "admin" → actual address
	closers   []func(context.Context) error
	done      chan struct{}
	listeners sync.WaitGroup
	delivered chan struct{}
	// deliveryStarted says whether delivered will ever be closed.
	deliveryStarted bool
	// failed reports a listener that stopped on its own.
	failed chan error
}

// start opens the data directory and starts every part of the relay.
func start(cfg config.Config, log *slog.Logger) (_ *server, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	cert, err := loadListenerCert(cfg)
	if err != nil {
		return nil, err
	}
	token, tokenPath, err := loadOrCreateToken(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defaultUpstream, err := upstreamFromConfig("default", cfg.DefaultRoute)
	if err != nil {
		return nil, err
	}

	s := &server{cert: cert, addrs: map[string]string{}, done: make(chan struct{}), delivered: make(chan struct{}), failed: make(chan error, 4)}
	if s.db, err = openDB(cfg.DataDir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.users, err = auth.NewStore(s.db); err != nil {
		return nil, err
	}
	if s.queue, err = queue.Open(s.db, nil); err != nil {
		return nil, err
	}
	if s.quota, err = quota.Open(s.db, nil); err != nil {
		return nil, err
	}
	hosts, err := smarthost.Open(s.db, filepath.Join(cfg.DataDir, "secrets.key"))
	if err != nil {
		return nil, err
	}
	router := newRouter(defaultUpstream, hosts, log.With("component", "delivery"))
	resolver, err := spf.NewResolver(cfg.DNS.Servers, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dns.servers: %w", err)
	}
	metrics.Register()
	metrics.QueueFuncs(
		func() float64 { return float64(s.queue.Stats().Pending) },
		func() float64 {
			if oldest := s.queue.Stats().Oldest; !oldest.IsZero() {
				return time.Since(oldest).Seconds()
			}
			return 0
		})
	policies := newPolicies(cfg)
	policies.hosts = hosts

	backend := relay.New(relay.Options{
		Hostname:              cfg.Hostname,
		Users:                 s.users,
		Spool:                 s.queue,
		Quota:                 s.quota,
		SPF:                   &spf.Checker{Resolver: resolver},
		PolicyFor:             policies.forUser,
		MaxMessageBytes:       cfg.Submission.MaxMessageBytes,
		MaxRecipients:         cfg.Submission.MaxRecipients,
		RejectBareLineEndings: cfg.Submission.BareLineEndings == "reject",
		ReadTimeout:           cfg.Submission.ReadTimeout.D(),
		WriteTimeout:          cfg.Submission.WriteTimeout.D(),
		MaxLineLength:         cfg.Submission.MaxLineLength,
		MaxBytesInFlight:      cfg.Submission.MaxBytesInFlight,
		MaxErrors:             cfg.Submission.MaxErrors,
		Throttle:              newThrottle(cfg.Submission),
		Logger:                log.With("component", "relay"),
	})
	tlsConfig := relay.ServerTLSConfig(*cert.cur.Load())
	// Served through GetCertificate, so that SIGHUP can replace it.
	tlsConfig.Certificates, tlsConfig.GetCertificate = nil, cert.get

	listen := func(kind, addr string, implicit bool) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", addr, err)
		}
		s.addrs[kind] = l.Addr().String()
		// Count connections before TLS, so a flood of handshakes is cut off
		// too; only a plain-text listener can say why.
		l = relay.LimitConnections(l, cfg.Submission.MaxConnections, cfg.Submission.MaxConnectionsPerIP, !implicit)
		log.Info("submission listener", "kind", kind, "addr", l.Addr().String())
		s.listeners.Add(1)
		go func() {
			defer s.listeners.Done()
			if err := backend.Serve(l, tlsConfig, implicit); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				s.failed <- fmt.Errorf("%s listener: %w", kind, err)
			}
		}()
		return nil
	}
	// At stop, sessions in the middle of a message finish it and get their
	// reply; the others get 421 4.3.2. Only then are the stores closed.
	s.closers = append(s.closers, backend.Shutdown)
	if cfg.Submission.ImplicitTLS != "" {
		if err := listen("implicit", cfg.Submission.ImplicitTLS, true); err != nil {
			return nil, err
		}
	}
	if cfg.Submission.StartTLS != "" {
		if err := listen("starttls", cfg.Submission.StartTLS, false); err != nil {
			return nil, err
		}
	}

	d := delivery.New(s.queue, router, delivery.Options{
		LocalName:              cfg.Hostname,
		Workers:                cfg.Delivery.Workers,
		ConnectionsPerUpstream: cfg.Delivery.ConnectionsPerUpstream,
		ConnectTimeout:         cfg.Delivery.ConnectTimeout.D(),
		CommandTimeout:         cfg.Delivery.CommandTimeout.D(),
		IdleConnection:         cfg.Delivery.IdleConnection.D(),
		RetryDelay:             retrySchedule(cfg.Retry),
		MaxLifetime:            cfg.Retry.MaxLifetime.D(),
		DelayWarning:           cfg.Retry.DelayWarning.D(),
		Logger:                 log.With("component", "delivery"),
	})
	if cfg.Admin.Listen != "" {
		l, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return nil, fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
		}
		s.addrs["admin"] = l.Addr().String()
		hs := &http.Server{
			Handler: admin.Handler(admin.Options{Users: s.users, Queue: s.queue, Quota: s.quota,
				LimitsFor: policies.limits, SPFPolicyFor: policies.spfPolicyOf, MaxPerDay: cfg.Limits.MaxPerDay,
				Bouncer: d, Token: token, Logger: log.With("component", "admin"),
				Smarthosts: hosts, LocalName: cfg.Hostname, ConnectionTestTimeout: cfg.Delivery.ConnectTimeout.D()}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		s.closers = append(s.closers, hs.Shutdown)
		log.Info("admin API", "addr", l.Addr().String(), "token_file", tokenPath)
		go func() {
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.failed <- fmt.Errorf("admin API: %w", err)
			}
		}()
	}

	s.deliveryStarted = true
	go func() {
		d.Run(s.done)
		close(s.delivered)
	}()
	go s.sweep(cfg.Retention, log.With("component", "retention"))

	log.Info("outbound started", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "certificate", cert.path,
		"default_route", fmt.Sprintf("%s:%d", cfg.DefaultRoute.Host, cfg.DefaultRoute.Port))
	return s, nil
}

// stop closes the listeners (letting sessions in DATA finish), stops the
// delivery workers after their current attempt, and closes the database.
func (s *server) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range s.closers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c(ctx)
		}()
	}
	wg.Wait()
	s.listeners.Wait()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	if s.deliveryStarted {
		<-s.delivered
	}
	if s.db != nil {
		s.db.Close()
	}
}

// retrySchedule turns the configured schedule into a delay function: the
// n-th attempt waits schedule[n-1]; the last entry repeats.
func retrySchedule(r config.Retry) func(int) time.Duration {
	return func(attempts int) time.Duration {
		i := min(max(attempts-1, 0), len(r.Schedule)-1)
		return r.Schedule[i].D()
	}
}

// smarthostRouter resolves a message's route: "" is the default route from
// the configuration, any other name a stored smarthost. The upstreams it
// builds (decrypted password, certificate pool) are cached until the
// smarthosts change (smarthost.Store.Version), so that delivery neither
// decrypts nor reads CA files per message, yet an updated password or a
// deleted smarthost takes effect at the next attempt. A route that names no
// smarthost is an error, which delivery treats as temporary: the message
// waits rather than leave through the wrong upstream.
//
// A smarthost's fallback is built with it, one level deep (the fallback's
// own fallback is not followed, so fallbacks cannot loop). A fallback that
// cannot be built (deleted, undecryptable password, unreadable CA file)
// costs only the failover: the smarthost is used without one, and the
// problem is logged once per smarthost version.
type smarthostRouter struct {
	def   *delivery.Upstream
	hosts *smarthost.Store
	log   *slog.Logger

	mu      sync.Mutex
	version uint64
	cache   map[string]*delivery.Upstream
}

func newRouter(def *delivery.Upstream, hosts *smarthost.Store, log *slog.Logger) *smarthostRouter {
	return &smarthostRouter{def: def, hosts: hosts, log: log, cache: map[string]*delivery.Upstream{}}
}

// Upstream implements delivery.Router.
func (r *smarthostRouter) Upstream(route string) (*delivery.Upstream, error) {
	if route == "" {
		return r.def, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Read the version before the smarthost: a change in between makes
	// the next call rebuild, never keeps a stale entry.
	if v := r.hosts.Version(); v != r.version {
		clear(r.cache)
		r.version = v
	}
	if up, ok := r.cache[route]; ok {
		return up, nil
	}
	h, err := r.hosts.Get(route)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w: add the smarthost again or move its users with `outbound user route`", route, err)
	}
	up, err := r.build(h)
	if err != nil {
		return nil, err
	}
	if h.Fallback != "" {
		fb, err := r.hosts.Get(h.Fallback)
		if err == nil {
			up.Fallback, err = r.build(fb)
		}
		if err != nil {
			// Cached without the fallback: logged again only after a change.
			r.log.Warn("fallback smarthost unusable; delivering without failover", "smarthost", route, "fallback", h.Fallback, "err", err)
		}
	}
	r.cache[route] = up
	return up, nil
}

// build makes the delivery upstream of a stored smarthost, without its
// fallback.
func (r *smarthostRouter) build(h *smarthost.Smarthost) (*delivery.Upstream, error) {
	password, err := r.hosts.Password(h.Name)
	if err != nil {
		return nil, err
	}
	roots, err := smarthost.RootCAs(h.CAFile)
	if err != nil {
		return nil, fmt.Errorf("smarthost %s: %w", h.Name, err)
	}
	return &delivery.Upstream{Name: h.Name, Host: h.Host, Port: h.Port, TLSMode: h.TLS,
		Username: h.Username, Password: password, RootCAs: roots}, nil
}

func upstreamFromConfig(name string, u config.Upstream) (*delivery.Upstream, error) {
	password, err := u.ResolvePassword()
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if u.CAFile != "" {
		pem, err := os.ReadFile(u.CAFile)
		if err != nil {
			return nil, fmt.Errorf("default_route.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("default_route.ca_file: %s holds no PEM certificate", u.CAFile)
		}
	}
	return &delivery.Upstream{Name: name, Host: u.Host, Port: u.Port, TLSMode: u.TLSMode,
		Username: u.Username, Password: password, RootCAs: roots}, nil
}

// policies derives each user's limits and SPF settings from its route and
// the configuration.
type policies struct {
	defaults   config.Limits
	defaultSPF spf.Identity
	spfPolicy  spf.Policy
	// hosts gives users with their own route their smarthost's SPF
	// identity; nil (the CLI's spf check) knows only the default route.
	hosts *smarthost.Store
}

func newPolicies(cfg config.Config) *policies {
	r := cfg.DefaultRoute
	id := spf.Identity{Name: r.Host, Include: r.SPFInclude}
	if p, ok := provider.ForHost(r.Host); ok {
		id.Name = p.Title
		if id.Include == "" {
			id.Include = p.SPFInclude
		}
	}
	for _, ip := range r.SPFIPs {
		id.IPs = append(id.IPs, net.ParseIP(ip))
	}
	return &policies{defaults: cfg.Limits, defaultSPF: id, spfPolicy: spf.Policy(r.SPFPolicy)}
}

// limits returns a user's effective limits: its own override, or the
// defaults of its kind of route (strict on the shared default route).
func (p *policies) limits(u *auth.User) quota.Limits {
	if u.Limits != nil {
		return quota.Limits{PerHour: u.Limits.PerHour, PerDay: u.Limits.PerDay}
	}
	if u.Route == "" {
		return quota.Limits{PerHour: p.defaults.DefaultRoutePerHour, PerDay: p.defaults.DefaultRoutePerDay}
	}
	return quota.Limits{PerHour: p.defaults.OwnSmarthostPerHour, PerDay: p.defaults.OwnSmarthostPerDay}
}

// forUser gives the relay a user's limits and the SPF identity of the
// upstream its mail will leave through: the default route's, or its
// smarthost's (own include, else its preset's). The SPF policy is the
// user's own, else its smarthost's, else the configured one; an upstream
// with no SPF identity at all cannot be checked against, so it is "off".
func (p *policies) forUser(u *auth.User) relay.UserPolicy {
	policy := p.spfPolicy
	id := p.defaultSPF
	if u.Route != "" {
		id = spf.Identity{Name: u.Route}
		if h, err := p.hostsGet(u.Route); err == nil {
			id.Include, id.Name = h.SPFIdentityInclude()
			for _, ip := range h.SPFIPs {
				id.IPs = append(id.IPs, net.ParseIP(ip))
			}
			if h.SPFPolicy != "" {
				policy = spf.Policy(h.SPFPolicy)
			}
		}
	}
	if u.SPFPolicy != "" {
		policy = spf.Policy(u.SPFPolicy)
	}
	if id.Include == "" && len(id.IPs) == 0 {
		policy = spf.PolicyOff // nothing to check against
	}
	return relay.UserPolicy{Limits: p.limits(u), SPF: id, SPFPolicy: policy}
}

// spfPolicyOf names the SPF policy in force for u, for the admin API.
func (p *policies) spfPolicyOf(u *auth.User) string { return string(p.forUser(u).SPFPolicy) }

func (p *policies) hostsGet(name string) (*smarthost.Smarthost, error) {
	if p.hosts == nil {
		return nil, smarthost.ErrNotFound
	}
	return p.hosts.Get(name)
}

// sweep applies the retention policy at start and then every hour.
func (s *server) sweep(r config.Retention, log *slog.Logger) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		res, err := s.queue.Sweep(r.Content.D(), r.Stub.D())
		switch {
		case err != nil:
			log.Error("retention sweep failed", "err", err)
		case res.Redacted+res.Deleted > 0:
			log.Info("retention sweep", "redacted", res.Redacted, "deleted", res.Deleted, "free_pages_wiped", res.Wiped)
		}
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}

// newThrottle builds the AUTH failure throttle; nil when disabled.
func newThrottle(c config.Submission) *relay.AuthThrottle {
	if c.AuthMaxFailures == 0 {
		return nil
	}
	return &relay.AuthThrottle{MaxFailures: c.AuthMaxFailures, Window: c.AuthFailureWindow.D(), Lockout: c.AuthLockout.D()}
}
