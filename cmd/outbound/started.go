package main

import (
	"fmt"
	"log/slog"

	"outbound/config"
)

// logStarted logs that the relay is up and where its mail goes; in
// capture mode it first warns, loudly, that the mail does not go out.
func logStarted(cfg config.Config, certPath string, log *slog.Logger) {
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
	log.Info("outbound started", "hostname", cfg.Hostname, "data_dir", cfg.DataDir, "certificate", certPath,
		"default_route", defaultRoute)
}
