package main

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"outbound/config"
	"outbound/internal/testutil"
	"outbound/smarthost"
	"outbound/store"
)

// A smarthost of kind capture is named in the start log: a warning on a
// relay that may capture, an error on one that looks like production
// (where it could only have been made before the configuration changed).
func TestStartLogNamesCaptureSmarthosts(t *testing.T) {
	dir := t.TempDir()
	hosts, err := smarthost.Open(store.Bolt(testutil.OpenDB(t)), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hosts.Add(smarthost.Smarthost{Name: "staging", Kind: smarthost.KindCapture}, ""); err != nil {
		t.Fatal(err)
	}
	startLog := func(cfg config.Config) string {
		var buf bytes.Buffer
		warnCaptureSmarthosts(cfg, hosts, slog.New(slog.NewTextHandler(&buf, nil)))
		return buf.String()
	}

	cfg := config.Default()
	cfg.DataDir = dir
	if got := startLog(cfg); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "smarthost=staging") {
		t.Fatalf("on the embedded defaults:\n%s", got)
	}
	cfg.Admin.Listen = "0.0.0.0:8025"
	if !refuseCaptureSmarthosts(cfg) {
		t.Fatal("a public admin listener does not look like production to the capture check")
	}
	if got := startLog(cfg); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "allow_capture_in_production") {
		t.Fatalf("on a production-looking relay:\n%s", got)
	}
}
