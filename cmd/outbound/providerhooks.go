package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"outbound/config"
	"outbound/events"
	"outbound/metrics"
	"outbound/providerhooks"
	"outbound/smarthost"
	"outbound/suppression"
)

// providerHooksHandler is the providers' webhook handler: secrets from the
// smarthost named in the path, events matched and recorded in evlog,
// suppressions in sup, results counted in the metrics.
func providerHooksHandler(c config.ProviderWebhooks, hosts *smarthost.Store, evlog *events.Bolt, sup *suppression.Bolt, log *slog.Logger) http.Handler {
	return providerhooks.NewHandler(providerhooks.Options{
		Secrets: func(name string) (providerhooks.Secrets, error) {
			m, err := hosts.WebhookSecrets(name)
			if errors.Is(err, smarthost.ErrNotFound) {
				return providerhooks.Secrets{}, nil
			}
			if err != nil {
				return providerhooks.Secrets{}, err
			}
			return providerhooks.SecretsFromMap(m), nil
		},
		Verifiers:    providerhooks.Verifiers(providerhooks.NewGuard(nil, 0)),
		Messages:     evlog,
		Events:       evlog,
		Suppressions: sup,
		Count:        func(p, r string) { metrics.ProviderWebhooks.WithLabelValues(p, r).Inc() },
		MaxBody:      c.MaxBodyBytes,
		Log:          log,
	})
}

// listenProviderHooks starts the providers' webhook listener on addr, with
// the admin listener's rule: plain HTTP only on loopback, HTTPS with the
// relay's certificate (reloaded on SIGHUP) anywhere else, so secrets such
// as Postmark's basic-auth credentials never cross a network in clear.
func (s *server) listenProviderHooks(addr string, handler http.Handler, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("provider_webhooks.listen %s: %w", addr, err)
	}
	s.addrs["provider_webhooks"] = l.Addr().String()
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	scheme, serve := "http", hs.Serve
	if adminServesTLS(addr) {
		hs.TLSConfig = adminTLSConfig(s.cert.get)
		scheme, serve = "https", func(l net.Listener) error { return hs.ServeTLS(l, "", "") }
	}
	s.closers = append(s.closers, hs.Shutdown)
	log.Info("providers' webhooks", "url", scheme+"://"+l.Addr().String()+"/hooks/{smarthost}/{mailgun,sendgrid,postmark,ses,generic}")
	go func() {
		if err := serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("provider webhooks: %w", err)
		}
	}()
	return nil
}
