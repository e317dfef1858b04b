package main

import (
	"log/slog"
	"testing"
	"time"

	"outbound/config"
)

func TestDeliveryOptionsCarryTheDSNSettings(t *testing.T) {
	cfg := config.Default()
	cfg.DSN.From, cfg.DSN.FallbackSender = "bounces@{domain}", ""
	got := deliveryOptions(cfg, slog.New(slog.DiscardHandler)).DSN
	if got.From != "bounces@{domain}" || got.FallbackSender != "" {
		t.Fatalf("delivery DSN options %+v, want dsn.from and dsn.fallback_sender as configured", got)
	}
}

// Every [submission] setting the relay enforces reaches relay.Options
// (max_bytes_in_flight once did not: the relay always used its default).
func TestRelayOptionsCarryTheSubmissionSettings(t *testing.T) {
	cfg := config.Default()
	s := &cfg.Submission
	s.MaxMessageBytes = 3 << 20
	s.MaxBytesInFlight = 7 << 20
	s.MaxRecipients = 17
	s.MaxLineLength = 4321
	s.MaxErrors = 9
	s.BareLineEndings = "reject"
	s.ReadTimeout = config.Duration(41 * time.Second)
	s.WriteTimeout = config.Duration(43 * time.Second)
	got := relayOptions(cfg, slog.New(slog.DiscardHandler))
	if got.MaxMessageBytes != 3<<20 || got.MaxBytesInFlight != 7<<20 || got.MaxRecipients != 17 ||
		got.MaxLineLength != 4321 || got.MaxErrors != 9 || !got.RejectBareLineEndings ||
		got.ReadTimeout != 41*time.Second || got.WriteTimeout != 43*time.Second {
		t.Fatalf("relay options %+v do not carry the [submission] settings", got)
	}
}
