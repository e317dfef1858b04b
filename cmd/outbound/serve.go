package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/admin"
	"outbound/auth"
	"outbound/autoconfig"
	"outbound/config"
	"outbound/delivery"
	"outbound/metrics"
	"outbound/queue"
	"outbound/quota"
	"outbound/relay"
	"outbound/route"
	"outbound/spf"
	"outbound/web"
	"outbound/webhooks"
)

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
	if s.cert.acme != nil {
		log.Info("SIGHUP: the certificate is managed over ACME and renewed by itself; nothing to reload")
		return
	}
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
	// webhooksDone is closed when the webhook worker stopped; nil when
	// it never started.
	webhooksDone chan struct{}
	// failed reports a listener that stopped on its own.
	failed chan error
}

// start opens the data directory and starts every part of the relay: the
// stores, the router, then the relay, delivery and the admin API that use
// them, and last the listeners.
func start(cfg config.Config, log *slog.Logger) (_ *server, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	token, tokenPath, err := loadOrCreateToken(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &server{addrs: map[string]string{}, done: make(chan struct{}), delivered: make(chan struct{}), failed: make(chan error, 4)}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	cert, err := loadListenerCert(cfg, log)
	if err != nil {
		return nil, err
	}
	s.cert = cert
	s.closers = append(s.closers, cert.stop)

	// Stores: one bbolt file, each owner with its buckets.
	if s.db, err = openDB(cfg.DataDir); err != nil {
		return nil, err
	}
	st, err := openStores(s.db, cfg)
	if err != nil {
		return nil, err
	}
	s.users, s.queue, s.quota = st.users, st.queue, st.quota
	operators, evlog, captured, hooks, suppressed := st.operators, st.events, st.captured, st.webhooks, st.suppressed
	hosts, dkimKeys, apiKeys, templates := st.hosts, st.dkim, st.apiKeys, st.templates
	metrics.Register()
	metrics.TLSExpiryFunc(cert.expiry)
	metrics.QueueFuncs(
		func() float64 { return float64(s.queue.Stats().Pending) },
		func() float64 {
			if oldest := s.queue.Stats().Oldest; !oldest.IsZero() {
				return time.Since(oldest).Seconds()
			}
			return 0
		})

	// Route: each user's upstream, limits and SPF rules.
	ropts, err := routeOptions(cfg, hosts, log.With("component", "delivery"))
	if err != nil {
		return nil, err
	}
	routes, err := route.New(ropts)
	if err != nil {
		return nil, err
	}

	// Relay, delivery and admin API, over the stores and the router.
	resolver, err := spf.NewResolver(cfg.DNS.Servers, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dns.servers: %w", err)
	}
	checker := &spf.Checker{Resolver: resolver}
	ro := relayOptions(cfg, log.With("component", "relay"))
	ro.Users, ro.Spool, ro.Quota, ro.SPF, ro.Routes = s.users, s.queue, s.quota, checker, routes
	ro.Suppressions, ro.Events, ro.Signer = suppressed, evlog, dkimKeys
	backend := relay.New(ro)
	do := deliveryOptions(cfg, log.With("component", "delivery"))
	// Read when a notification is due, so that turning them off applies
	// to messages already queued; a user that cannot be read gets them.
	do.DSN.Off = func(user string) bool {
		u, err := s.users.Get(user)
		return err == nil && u.DSNOff
	}
	do.Events, do.Suppressions, do.Capture = evlog, suppressed, captured
	d := delivery.New(s.queue, routes, do)
	api := admin.Handler(admin.Options{Users: s.users, Queue: s.queue, Quota: s.quota, Routes: routes,
		Bouncer: d, Token: token, Logger: log.With("component", "admin"),
		Smarthosts: hosts, LocalName: cfg.Hostname, ConnectionTestTimeout: cfg.Delivery.ConnectTimeout.D(),
		AllowPrivateHosts: cfg.Web.AllowPrivateHosts, Operators: operators, SPF: checker,
		Events: evlog, Suppressions: suppressed, Webhooks: hooks, DKIM: dkimKeys, TLS: cert.status, Capture: captured, APIKeys: apiKeys, Templates: templates})
	adminTLS := adminServesTLS(cfg.Admin.Listen)
	wo := web.Options{API: api, Token: token, Operators: operators, Users: s.users,
		Lifetimes: web.Lifetimes{Idle: cfg.Web.SessionIdle.D()}, Secure: adminTLS, Logger: log.With("component", "web")}
	acOpts := autoconfigOptions(cfg, s.users, token, log.With("component", "autoconfig"))
	wo.AppleProfile = appleProfiles(acOpts, s.users)
	// The sign-in page is throttled as SMTP AUTH is, with its own counts.
	if th := newThrottle(cfg.Submission); th != nil {
		wo.Throttle = th
	}
	ui, err := web.Handler(wo)
	if err != nil {
		return nil, err
	}

	// Listeners.
	tlsConfig := relay.ServerTLSConfig(tls.Certificate{})
	// Served through GetCertificate, so that SIGHUP or ACME can replace it.
	tlsConfig.Certificates, tlsConfig.GetCertificate = nil, cert.get
	// At stop, sessions in the middle of a message finish it and get their
	// reply; the others get 421 4.3.2. Only then are the stores closed.
	s.closers = append(s.closers, backend.Shutdown)
	for _, l := range []struct {
		kind, addr string
		implicit   bool
	}{{"implicit", cfg.Submission.ImplicitTLS, true}, {"starttls", cfg.Submission.StartTLS, false}} {
		if l.addr == "" {
			continue
		}
		if err := s.listenSubmission(backend, l.kind, l.addr, l.implicit, tlsConfig, cfg.Submission, log); err != nil {
			return nil, err
		}
	}
	ac := autoconfig.Handler(acOpts)
	if cfg.Admin.Listen != "" {
		log.Info("admin token", "token_file", tokenPath)
		if err := s.listenHTTP(httpListener{key: "admin", what: "admin API and web interface", addr: cfg.Admin.Listen,
			handler: withAutoconfig(ac, adminMux(api, ui, mcpHTTP(api, token, checker))), useTLS: adminTLS}, log); err != nil {
			return nil, err
		}
	}
	if a := cfg.Autoconfig.Listen; a != "" {
		if err := s.listenHTTP(httpListener{key: "autoconfig", what: "mail client autoconfig", addr: a,
			handler: ac, useTLS: adminServesTLS(a), writeTimeout: time.Minute}, log.With("component", "autoconfig")); err != nil {
			return nil, err
		}
	}
	if cfg.SendAPI.Listen != "" {
		if err := s.listenSendAPI(cfg, apiKeys, backend, log.With("component", "send-api")); err != nil {
			return nil, err
		}
	}
	if a := cfg.ProviderWebhooks.Listen; a != "" {
		plog := log.With("component", "provider-webhooks")
		if err := s.listenHTTP(httpListener{key: "provider_webhooks", what: "providers' webhooks", addr: a,
			handler: providerHooksHandler(cfg.ProviderWebhooks, hosts, evlog, suppressed, plog), useTLS: adminServesTLS(a),
			paths: "hooks/{smarthost}/{mailgun,sendgrid,postmark,ses,generic}", writeTimeout: time.Minute}, plog); err != nil {
			return nil, err
		}
	}

	s.deliveryStarted = true
	go func() {
		d.Run(s.done)
		close(s.delivered)
	}()
	go s.sweep(cfg.Retention, log.With("component", "retention"))
	hookWorker := webhooks.NewWorker(hooks, webhooks.Options{Policy: st.webhookPolicy, Events: evlog, Logger: log.With("component", "webhooks")})
	s.webhooksDone = make(chan struct{})
	go func() {
		hookWorker.Run(s.done)
		close(s.webhooksDone)
	}()

	defaultRoute := fmt.Sprintf("%s:%d", cfg.DefaultRoute.Host, cfg.DefaultRoute.Port)
	if cfg.Capture() {
		defaultRoute = "capture"
		// Loud on purpose: someone who expected mail to leave must see
		// at once that it does not, and what to change.
		log.Warn("CAPTURE MODE: mail is captured, not sent. Every message on the default route is kept in the capture store " +
			"(`outbound capture list`, GET /api/capture, the web interface's Captured page). To send for real, " +
			"set [default_route] mode = \"smtp\" with host, port, tls, username and password_file in a config file " +
			"(see outbound.example.toml) and start with -config")
	}
	log.Info("outbound started", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "certificate", cert.path,
		"default_route", defaultRoute)
	return s, nil
}

// journals tells every storage owner that keeps records about messages
// (queue.Journal) of a redaction or deletion, in its transaction.
type journals []queue.Journal

func (js journals) Redacted(tx *bolt.Tx, id, user string, at time.Time) error {
	for _, j := range js {
		if err := j.Redacted(tx, id, user, at); err != nil {
			return err
		}
	}
	return nil
}

func (js journals) Removed(tx *bolt.Tx, id string) error {
	for _, j := range js {
		if err := j.Removed(tx, id); err != nil {
			return err
		}
	}
	return nil
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
	if s.webhooksDone != nil {
		<-s.webhooksDone // its last outcome is stored before the DB closes
	}
	if s.db != nil {
		s.db.Close()
	}
}

// sweep applies the retention policy until the server stops: hourly
// sweeps, a sweep soon after each queue delete, and retried wipes.
func (s *server) sweep(r config.Retention, log *slog.Logger) {
	s.queue.RunRetention(s.done, queue.Retention{Content: r.Content.D(), Stub: r.Stub.D()}, log)
}
