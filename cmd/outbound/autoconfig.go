package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"outbound/auth"
	"outbound/autoconfig"
	"outbound/config"
)

// autoconfigOptions are the autoconfig handler's: the relay's host name
// and the submission listeners' ports, which clients are told to use, and
// the profile links' key, derived from the admin token.
func autoconfigOptions(cfg config.Config, users autoconfig.Users, adminToken string, log *slog.Logger) autoconfig.Options {
	return autoconfig.Options{Hostname: cfg.Hostname, IMAPHost: cfg.Autoconfig.IMAPHost,
		ImplicitTLSPort: portOf(cfg.Submission.ImplicitTLS), STARTTLSPort: portOf(cfg.Submission.StartTLS),
		Users: users, Tokens: &autoconfig.Tokens{Key: autoconfig.TokenKey(adminToken)}, Logger: log}
}

// portOf is the port of a listen address, 0 (the standard one) when it
// has none or the listener is off.
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// withAutoconfig serves autoconfig's paths with ac and everything else
// with next: the admin listener answers both.
func withAutoconfig(ac, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, p := range autoconfig.Paths {
		mux.Handle(p, ac)
	}
	mux.Handle("/", next)
	return mux
}

// listenAutoconfig starts autoconfig's own listener on addr, with the
// admin listener's rule: plain HTTP only on loopback, HTTPS with the
// relay's certificate (reloaded on SIGHUP) anywhere else.
func (s *server) listenAutoconfig(addr string, handler http.Handler, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("autoconfig.listen %s: %w", addr, err)
	}
	s.addrs["autoconfig"] = l.Addr().String()
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	scheme, serve := "http", hs.Serve
	if adminServesTLS(addr) {
		hs.TLSConfig = adminTLSConfig(s.cert.get)
		scheme, serve = "https", func(l net.Listener) error { return hs.ServeTLS(l, "", "") }
	}
	s.closers = append(s.closers, hs.Shutdown)
	log.Info("mail client autoconfig", "url", scheme+"://"+l.Addr().String()+"/")
	go func() {
		if err := serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("autoconfig: %w", err)
		}
	}()
	return nil
}

// appleProfiles gives the web interface each user's Apple profile.
func appleProfiles(o autoconfig.Options, users *auth.Store) func(login string) ([]byte, error) {
	return func(login string) ([]byte, error) {
		u, err := users.Get(login)
		if err != nil {
			return nil, err
		}
		return o.Profile(u), nil
	}
}
