package main

import (
	"fmt"
	"log/slog"

	"outbound/config"
	"outbound/smarthost"
)

// logStarted logs that the relay is up and where its mail goes; in
// capture mode, and for every smarthost of kind capture, it first warns,
// loudly, that the mail does not go out.
func logStarted(cfg config.Config, certPath string, hosts *smarthost.Store, log *slog.Logger) {
	warnCaptureSmarthosts(cfg, hosts, log)
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

// warnCaptureSmarthosts names the smarthosts of kind capture: their users'
// mail is kept, not sent. A production-looking relay refuses new ones
// (refuseCaptureSmarthosts), but one made before the configuration looked
// like production keeps capturing, so that case is an error in the log.
func warnCaptureSmarthosts(cfg config.Config, hosts *smarthost.Store, log *slog.Logger) {
	all, err := hosts.List()
	if err != nil {
		log.Error("listing smarthosts to find capture ones", "err", err)
		return
	}
	for _, h := range all {
		if !h.Captures() {
			continue
		}
		if refuseCaptureSmarthosts(cfg) {
			log.Error("smarthost captures mail on a production relay: mail routed through it is kept, not sent; "+
				"give it an SMTP server (outbound smarthost update NAME --kind smtp ...) or set allow_capture_in_production = true",
				"smarthost", h.Name)
			continue
		}
		log.Warn("smarthost captures mail: mail routed through it is kept in the capture store, not sent", "smarthost", h.Name)
	}
}
