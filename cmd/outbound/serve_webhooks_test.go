package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"outbound/internal/testutil"
)

// The served relay signs its webhooks with the secret `webhook add`
// printed, which is not in the database file in clear; `key rotate` counts
// that secret and the relay keeps signing with it after the rotation and
// after a restart (serve registered the webhook store for the rotation).
func TestServeSignsWebhooksAcrossKeyRotationAndRestart(t *testing.T) {
	var mu sync.Mutex
	var verified []string // the subjects of the events whose signature verified
	var secret string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Error(err)
		} else if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("the signature of %s does not verify: %v", body, err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		verified = append(verified, string(body))
	}))
	t.Cleanup(hook.Close)
	verifiedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(verified) }
	waitVerified := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for verifiedCount() < n {
			if time.Now().After(deadline) {
				t.Fatalf("no verified webhook %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	_, port, _ := net.SplitHostPort(testutil.FreePort(t))
	config := testutil.WriteFile(t, dir, "outbound.toml", []byte("data_dir = "+strconv.Quote(dataDir)+"\n"+
		"[submission]\nimplicit_tls = \"127.0.0.1:0\"\nstarttls = \"\"\n"+
		"[admin]\nlisten = "+strconv.Quote(net.JoinHostPort("127.0.0.1", port))+"\n"+
		"[webhooks]\nallow_http = true\nallow_private = true\n"))
	cfg, err := loadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, config, "a long enough password\n", "user", "add", "alice@example.org"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	// Three messages: more than the default route's daily limit.
	if out, err := runCLI(t, config, "", "limits", "set", "alice@example.org", "--per-hour", "10", "--per-day", "10"); err != nil {
		t.Fatalf("limits set: %v\n%s", err, out)
	}
	out, err := runCLI(t, config, "", "webhook", "add", "alice@example.org", hook.URL+"/hooks", "--events", "received")
	m := regexp.MustCompile(`whsec_\S+`).FindString(out)
	if err != nil || m == "" {
		t.Fatalf("webhook add: %v\n%s", err, out)
	}
	mu.Lock()
	secret = m
	mu.Unlock()

	submit := func(srv *server, subject string) {
		t.Helper()
		submitAsAlice(t, srv, subject)
	}
	submit(srv, "first")
	waitVerified(1, "before the rotation")

	out, err = runCLI(t, config, "", "key", "rotate")
	if err != nil || !strings.Contains(out, "master key rotated: 1 secrets re-encrypted (0 smarthost passwords, 0 smarthosts' provider webhook secrets, 0 DKIM keys, 1 webhook endpoint secrets)") {
		t.Fatalf("key rotate: %v\n%s", err, out)
	}
	submit(srv, "after the rotation")
	waitVerified(2, "after the rotation")

	srv.stop()
	raw, err := os.ReadFile(filepath.Join(dataDir, "outbound.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(hook.URL+"/hooks")) {
		t.Fatal("the endpoint's URL is not in outbound.db: the scan reads the wrong file")
	}
	if bytes.Contains(raw, []byte(strings.TrimPrefix(secret, "whsec_"))) {
		t.Fatal("the webhook signing secret is in outbound.db in clear")
	}
	if srv, err = start(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	submit(srv, "after the restart")
	waitVerified(3, "after the rotation and a restart")
}
