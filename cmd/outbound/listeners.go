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

// listenSubmission starts one submission listener (kind "implicit" or
// "starttls") on addr, served by backend until its Shutdown.
func (s *server) listenSubmission(backend *relay.Backend, kind, addr string, implicit bool, tlsConfig *tls.Config, c config.Submission, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	s.addrs[kind] = l.Addr().String()
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

// listenAdmin starts the admin listener on addr: the admin API, metrics
// and web interface in handler, over HTTPS with the relay's certificate
// (reloaded on SIGHUP like the submission listeners') when useTLS.
func (s *server) listenAdmin(addr string, handler http.Handler, useTLS bool, tokenPath string, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", addr, err)
	}
	s.addrs["admin"] = l.Addr().String()
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	scheme, serve := "http", hs.Serve
	if useTLS {
		hs.TLSConfig = adminTLSConfig(s.cert.get)
		scheme, serve = "https", func(l net.Listener) error { return hs.ServeTLS(l, "", "") }
	}
	s.closers = append(s.closers, hs.Shutdown)
	log.Info("admin API and web interface", "url", scheme+"://"+l.Addr().String()+"/", "token_file", tokenPath)
	go func() {
		if err := serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("admin API: %w", err)
		}
	}()
	return nil
}
