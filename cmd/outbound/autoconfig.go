package main

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"

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
