package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/config"
	"outbound/relay"
)

// listenSubmissions starts the submission listeners that are configured
// (submission.implicit_tls, submission.starttls), served by backend with
// the relay's certificate.
func (s *server) listenSubmissions(backend *relay.Backend, c config.Submission, log *slog.Logger) error {
	tlsConfig := relay.ServerTLSConfig(tls.Certificate{})
	// Served through GetCertificate, so that SIGHUP or ACME can replace it.
	tlsConfig.Certificates, tlsConfig.GetCertificate = nil, s.cert.get
	for _, l := range []struct {
		kind, addr string
		implicit   bool
	}{{"implicit", c.ImplicitTLS, true}, {"starttls", c.StartTLS, false}} {
		if l.addr == "" {
			continue
		}
		if err := s.listenSubmission(backend, l.kind, l.addr, l.implicit, tlsConfig, c, log); err != nil {
			return err
		}
	}
	return nil
}

// listenSubmission starts one submission listener (kind "implicit" or
// "starttls") on addr, served by backend until its Shutdown.
func (s *server) listenSubmission(backend *relay.Backend, kind, addr string, implicit bool, tlsConfig *tls.Config, c config.Submission, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	s.addrs[kind] = l.Addr().String()
	// The PROXY header comes before anything else, TLS included; read
	// first, its client address is the one the limits count.
	pl, err := withProxyProtocol(l, c.ProxyProtocolFrom, proxyHeaderTimeout(c.ReadTimeout.D()), kind, log)
	if err != nil {
		l.Close()
		return err
	}
	l = pl
	// Count connections before TLS, so a flood of handshakes is cut off
	// too; only a plain-text listener can say why.
	l = relay.LimitConnections(l, c.MaxConnections, c.MaxConnectionsPerIP, !implicit)
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

// httpListener describes one of the relay's HTTP listeners.
type httpListener struct {
	// key is the config key of its address (in errors) and its name in
	// server.addrs; what is how the start log names it.
	key, what string
	addr      string
	handler   http.Handler
	// useTLS serves HTTPS with the relay's certificate (reloaded on SIGHUP
	// like the submission listeners'); the rule is plain HTTP only on
	// loopback (adminServesTLS).
	useTLS bool
	// paths, when set, follows the URL in the start log.
	paths string
	// writeTimeout bounds writing an answer; 0 for the admin listener,
	// whose connection tests may take longer.
	writeTimeout time.Duration
}

// listenHTTP starts one HTTP listener: the admin API and web interface,
// the providers' webhooks, autoconfig. Each is shut down with the others
// at stop.
func (s *server) listenHTTP(h httpListener, log *slog.Logger) error {
	l, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", h.key, h.addr, err)
	}
	s.addrs[h.key] = l.Addr().String()
	hs := &http.Server{Handler: h.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: h.writeTimeout, MaxHeaderBytes: 64 << 10}
	scheme, serve := "http", hs.Serve
	if h.useTLS {
		hs.TLSConfig = adminTLSConfig(s.cert.get)
		scheme, serve = "https", func(l net.Listener) error { return hs.ServeTLS(l, "", "") }
	}
	s.closers = append(s.closers, hs.Shutdown)
	log.Info(h.what, "url", scheme+"://"+l.Addr().String()+"/"+h.paths)
	go func() {
		if err := serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("%s: %w", h.what, err)
		}
	}()
	return nil
}
