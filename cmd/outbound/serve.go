package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/admin"
	"outbound/auth"
	"outbound/autoconfig"
	"outbound/config"
	"outbound/delivery"
	"outbound/queue"
	"outbound/quota"
	"outbound/relay"
	"outbound/route"
	"outbound/spf"
	"outbound/web"
)

// server is a running relay: listeners, delivery workers, admin API.
type server struct {
	db    *bolt.DB
	users *auth.Store
	queue *queue.Queue
	quota quota.Limiter
	// st are the stores; st.close closes what is not in db.
	st        *stores
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
	// shipped is closed when the shipper of the node's outbox stopped
	// (package ship); nil on one file.
	shipped chan struct{}
	// failed reports a listener that stopped on its own.
	failed chan error
}

// start opens the data directory and starts every part of the relay: the
// stores, the router, then the relay, delivery and the admin API that use
// them, then the listeners, and last the background workers.
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

	// Stores: the node's bbolt file, each owner with its buckets, and the
	// shared state in it or in PostgreSQL ([store]).
	if s.db, err = openDB(cfg.DataDir); err != nil {
		return nil, err
	}
	st, err := openStores(s.db, cfg, log)
	if err != nil {
		return nil, err
	}
	s.st, s.users, s.queue, s.quota = st, st.users, st.queue, st.quota
	operators, evlog, captured, hooks, suppressed := st.operators, st.events, st.captured, st.webhooks, st.suppressed
	hosts, dkimKeys, apiKeys, templates := st.hosts, st.dkim, st.apiKeys, st.templates
	registerMetrics(cert, s.queue)

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
	ro.Suppressions, ro.Events, ro.Signer = suppressed, st.recorder, dkimKeys
	backend := relay.New(ro)
	do := deliveryOptions(cfg, log.With("component", "delivery"))
	// Read when a notification is due, so that turning them off applies
	// to messages already queued; a user that cannot be read gets them.
	do.DSN.Off = func(user string) bool {
		u, err := s.users.Get(user)
		return err == nil && u.DSNOff
	}
	do.Events, do.Suppressions, do.Capture = st.recorder, st.learnt, captured
	d := delivery.New(s.queue, routes, do)
	api := admin.Handler(admin.Options{Users: s.users, Queue: s.queue, Quota: s.quota, Routes: routes,
		Bouncer: d, Token: token, Logger: log.With("component", "admin"),
		Smarthosts: hosts, LocalName: cfg.Hostname, ConnectionTestTimeout: cfg.Delivery.ConnectTimeout.D(),
		ImplicitTLSPort: portOf(cfg.Submission.ImplicitTLS), STARTTLSPort: portOf(cfg.Submission.StartTLS),
		AllowPrivateHosts: cfg.Web.AllowPrivateHosts, RefuseCaptureSmarthosts: refuseCaptureSmarthosts(cfg), Operators: operators, SPF: checker,
		Events: evlog, Suppressions: suppressed, Webhooks: hooks, DKIM: dkimKeys, TLS: cert.status, Capture: captured, APIKeys: apiKeys, Templates: templates, Node: st.nodeName()})
	adminTLS := adminServesTLS(cfg.Admin.Listen)
	wo := web.Options{API: api, Token: token, Operators: operators, Users: s.users,
		Lifetimes: web.Lifetimes{Idle: cfg.Web.SessionIdle.D()}, Secure: adminTLS, Logger: log.With("component", "web"),
		AllowPrivateHosts: cfg.Web.AllowPrivateHosts}
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
	// At stop, sessions in the middle of a message finish it and get their
	// reply; the others get 421 4.3.2. Only then are the stores closed.
	s.closers = append(s.closers, backend.Shutdown)
	if err := s.listenSubmissions(backend, cfg.Submission, log); err != nil {
		return nil, err
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

	// Background work: delivery, the retention sweep, webhooks.
	s.startWorkers(d, st, cfg.Retention, log)
	logStarted(cfg, cert.path, st.hosts, log)
	return s, nil
}

// serve runs the relay configured at configPath until SIGINT or SIGTERM,
// or until a listener stops on its own; SIGHUP reloads the certificate.
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
