package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"outbound/config"
	"outbound/internal/testutil"
)

func TestAdminServesTLSOffLoopbackOnly(t *testing.T) {
	for listen, want := range map[string]bool{
		"127.0.0.1:8025":   false,
		"127.0.0.2:8025":   false,
		"[::1]:8025":       false,
		"localhost:8025":   false,
		"0.0.0.0:8025":     true,
		":8025":            true,
		"[::]:8025":        true,
		"192.0.2.10:8025":  true,
		"[2001:db8::1]:80": true,
		"admin.example:80": true,
		"nonsense":         true,
	} {
		if got := adminServesTLS(listen); got != want {
			t.Errorf("adminServesTLS(%q) = %v, want %v", listen, got, want)
		}
	}
}

// startServer runs the relay in process on a config whose admin.listen is
// admin (a port is picked), and returns the config file's path and the
// admin port.
func startServer(t *testing.T, adminHost string) (configPath, port string) {
	t.Helper()
	dir := t.TempDir()
	_, port, _ = net.SplitHostPort(testutil.FreePort(t))
	// These servers test listeners; they capture mail (the embedded
	// default route) even on a public admin address.
	text := "allow_capture_in_production = true\n" +
		"data_dir = " + strconv.Quote(filepath.Join(dir, "data")) + "\n" +
		"[submission]\nimplicit_tls = \"127.0.0.1:0\"\nstarttls = \"\"\n" +
		"[admin]\nlisten = " + strconv.Quote(net.JoinHostPort(adminHost, port)) + "\n"
	configPath = testutil.WriteFile(t, dir, "outbound.toml", []byte(text))
	cfg, err := loadConfig(configPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return configPath, port
}

func runCLI(t *testing.T, config, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(append([]string{"-config", config}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

// Off loopback the admin listener speaks only HTTPS, with the relay's
// certificate; the CLI reaches it (trusting the certificate file) and the
// web interface's cookie is Secure. Operators are managed with the CLI.
func TestAdminListenerOffLoopbackIsHTTPS(t *testing.T) {
	config, port := startServer(t, "0.0.0.0")

	if out, err := runCLI(t, config, "operator password 1\n", "operator", "add", "admin"); err != nil || !strings.Contains(out, "added operator admin") {
		t.Fatalf("operator add over HTTPS: %v\n%s", err, out)
	}
	if out, err := runCLI(t, config, "", "operator", "list"); err != nil || !strings.Contains(out, "admin") {
		t.Fatalf("operator list: %v\n%s", err, out)
	}

	// Plain HTTP gets no page.
	resp, err := http.Get("http://127.0.0.1:" + port + "/login")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "Sign in") {
			t.Errorf("plain HTTP off loopback: %d %q, want the TLS server's 400", resp.StatusCode, body)
		}
	}

	// Over HTTPS the sign-in page is served, its cookie Secure.
	_, c, err := adminEndpoint(mustLoad(t, config))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = c.Get("https://127.0.0.1:" + port + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), ">Sign in</button>") {
		t.Fatalf("GET /login over HTTPS: %d\n%s", resp.StatusCode, body)
	}
	if set := resp.Header.Get("Set-Cookie"); !strings.Contains(set, "Secure") {
		t.Errorf("cookie over HTTPS without Secure: %q", set)
	}

	if out, err := runCLI(t, config, "", "operator", "del", "admin"); err != nil || !strings.Contains(out, "deleted operator admin") {
		t.Fatalf("operator del: %v\n%s", err, out)
	}
	if out, err := runCLI(t, config, "", "operator", "del", "admin"); err == nil || !strings.Contains(out+err.Error(), "no such operator") {
		t.Errorf("deleting twice: %v %s", err, out)
	}
}

// On loopback it is plain HTTP, with the API, the metrics and the web
// interface on one listener.
func TestAdminListenerOnLoopbackIsHTTP(t *testing.T) {
	config, port := startServer(t, "127.0.0.1")
	base := "http://127.0.0.1:" + port
	for path, want := range map[string]string{
		"/healthz":   `"ok"`,
		"/metrics":   "outbound_queue_messages",
		"/api/users": "missing or wrong bearer token",
		"/login":     ">Sign in</button>",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, lacks %q", path, resp.StatusCode, want)
		}
	}
	if out, err := runCLI(t, config, "short\n", "operator", "add", "admin"); err == nil || !strings.Contains(err.Error(), "at least 8 characters") {
		t.Errorf("a short operator password: %v %s", err, out)
	}
}

// The CLI trusts the relay's certificate file and nothing else it cannot
// verify: a listener with another self-signed certificate is refused.
func TestCLIRefusesAnotherCertificate(t *testing.T) {
	config, _ := startServer(t, "0.0.0.0")
	cfg := mustLoad(t, config)
	certPath := filepath.Join(cfg.DataDir, "tls", "cert.pem")
	other := testutil.NewCA(t)
	if err := os.WriteFile(certPath, other.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, config, "", "operator", "list"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("the server's certificate no longer matches the file, yet: %v %s", err, out)
	}
}

func mustLoad(t *testing.T, path string) config.Config {
	t.Helper()
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
