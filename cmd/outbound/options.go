package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"outbound/auth"
	"outbound/config"
	"outbound/delivery"
	"outbound/quota"
	"outbound/relay"
	"outbound/route"
	"outbound/spf"
)

// This file turns the configuration into the plain options each package
// takes; serve.go wires the packages together. Only cmd/outbound reads a
// config.Config.

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

// routeDefault is the default route as package route takes it, without
// its password: `spf check` needs only the SPF settings, and must not
// fail on a password file only the server may read.
func routeDefault(u config.Upstream) route.Default {
	return route.Default{Host: u.Host, Port: u.Port, TLSMode: u.TLSMode, Username: u.Username, CAFile: u.CAFile,
		SPFInclude: u.SPFInclude, SPFIPs: u.SPFIPs, SPFPolicy: spf.Policy(u.SPFPolicy), Capture: u.Mode == "capture"}
}

// routeOptions are the router's options, the default route's password
// read from its file if that is how it is configured.
func routeOptions(cfg config.Config, hosts route.Smarthosts, log *slog.Logger) (route.Options, error) {
	def := routeDefault(cfg.DefaultRoute)
	var err error
	if def.Password, err = cfg.DefaultRoute.ResolvePassword(); err != nil {
		return route.Options{}, err
	}
	l := cfg.Limits
	return route.Options{
		Default:       def,
		DefaultLimits: quota.Limits{PerHour: l.DefaultRoutePerHour, PerDay: l.DefaultRoutePerDay},
		OwnLimits:     quota.Limits{PerHour: l.OwnSmarthostPerHour, PerDay: l.OwnSmarthostPerDay},
		MaxPerDay:     l.MaxPerDay,
		Smarthosts:    hosts,
		Logger:        log,
		// Delivery dials senders' own SMTP servers on public addresses
		// only, unless the operator allows others.
		AllowPrivateHosts: cfg.Web.AllowPrivateHosts,
	}, nil
}

// relayOptions are the submission settings; the caller adds the stores.
func relayOptions(cfg config.Config, log *slog.Logger) relay.Options {
	c := cfg.Submission
	return relay.Options{
		Hostname:              cfg.Hostname,
		MaxMessageBytes:       c.MaxMessageBytes,
		MaxBytesInFlight:      c.MaxBytesInFlight,
		MaxRecipients:         c.MaxRecipients,
		RejectBareLineEndings: c.BareLineEndings == "reject",
		ReadTimeout:           c.ReadTimeout.D(),
		WriteTimeout:          c.WriteTimeout.D(),
		MaxLineLength:         c.MaxLineLength,
		MaxErrors:             c.MaxErrors,
		Throttle:              newThrottle(c),
		Logger:                log,
	}
}

// newThrottle builds the AUTH failure throttle; nil when disabled.
func newThrottle(c config.Submission) *auth.Throttle {
	if c.AuthMaxFailures == 0 {
		return nil
	}
	return &auth.Throttle{MaxFailures: c.AuthMaxFailures, Window: c.AuthFailureWindow.D(), Lockout: c.AuthLockout.D()}
}

// deliveryOptions are the delivery workers' settings and retry schedule.
func deliveryOptions(cfg config.Config, log *slog.Logger) delivery.Options {
	return delivery.Options{
		LocalName:              cfg.Hostname,
		Workers:                cfg.Delivery.Workers,
		ConnectionsPerUpstream: cfg.Delivery.ConnectionsPerUpstream,
		ConnectTimeout:         cfg.Delivery.ConnectTimeout.D(),
		CommandTimeout:         cfg.Delivery.CommandTimeout.D(),
		IdleConnection:         cfg.Delivery.IdleConnection.D(),
		RetryDelay:             retrySchedule(cfg.Retry),
		MaxLifetime:            cfg.Retry.MaxLifetime.D(),
		DelayWarning:           cfg.Retry.DelayWarning.D(),
		DSN:                    delivery.DSNOptions{From: cfg.DSN.From, FallbackSender: cfg.DSN.FallbackSender},
		Logger:                 log,
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
