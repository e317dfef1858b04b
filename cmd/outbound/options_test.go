package main

import (
	"log/slog"
	"testing"

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
