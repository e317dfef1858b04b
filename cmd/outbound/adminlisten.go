package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"outbound/config"
	"outbound/internal/netutil"
)

// The admin listener serves the admin API (/api), the metrics (/metrics,
// /healthz) and the web interface (/). Its rule: plain HTTP only on a
// loopback address, where nothing crosses a network; anywhere else HTTPS
// with the submission listeners' certificate, so that sign-in passwords,
// session cookies and the bearer token are never sent in the clear.

// adminServesTLS reports whether the admin listener at listen must serve
// HTTPS: when its host is anything but a loopback address or "localhost"
// (an empty or unspecified host listens on every interface).
func adminServesTLS(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	return err != nil || !netutil.IsLoopback(host)
}

// adminMux puts the admin API and the web interface on one handler: the
// API owns /api/, /metrics and /healthz, the MCP tools /mcp, the web
// interface the rest.
func adminMux(api, ui, mcpHTTP http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/mcp", mcpHTTP)
	mux.Handle("/metrics", api)
	mux.Handle("/healthz", api)
	mux.Handle("/", ui)
	return mux
}

// adminTLSConfig is the HTTPS admin listener's: the relay's certificate,
// through get so that SIGHUP replaces it here too.
func adminTLSConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{GetCertificate: get, MinVersion: tls.VersionTLS12}
}

// adminEndpoint is where the CLI reaches the admin API of the server
// configured by cfg, and the HTTP client to use. Over HTTPS the client
// trusts exactly the relay's certificate file (tls.cert, or the
// self-signed data_dir/tls/cert.pem), whatever names it carries, and
// otherwise the system's roots for cfg.hostname: the CLI runs on the same
// machine, so it can read the file the server serves.
func adminEndpoint(cfg config.Config) (string, *http.Client, error) {
	listen := cfg.Admin.Listen
	if listen == "" {
		return "", nil, errors.New("admin.listen is empty in the configuration: the CLI needs the admin API")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", nil, fmt.Errorf("admin.listen %q: %w", listen, err)
	}
	// A listener on every interface is reached on loopback.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	addr := net.JoinHostPort(host, port)
	client := &http.Client{Timeout: 30 * time.Second}
	if !adminServesTLS(listen) {
		return "http://" + addr, client, nil
	}
	if cfg.ACME.Enabled {
		// A certificate from a public CA, renewed by the server: the
		// system's roots vouch for it.
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ACMENames()[0]}, Proxy: nil}
		return "https://" + addr, client, nil
	}
	certPath := cfg.TLS.Cert
	if certPath == "" {
		certPath = filepath.Join(cfg.DataDir, "tls", "cert.pem")
	}
	pinned, err := leafOf(certPath)
	if err != nil {
		return "", nil, fmt.Errorf("admin.listen %s is served over HTTPS and the CLI trusts the relay's certificate, but: %w", listen, err)
	}
	client.Transport = &http.Transport{TLSClientConfig: pinnedTLS(pinned, cfg.Hostname), Proxy: nil}
	return "https://" + addr, client, nil
}

// leafOf reads the first certificate of a PEM file.
func leafOf(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return block.Bytes, nil
}

// pinnedTLS accepts the server whose certificate is exactly pinned (the
// relay's own file), or else one the system's roots vouch for as
// hostname (a renewed certificate the server has loaded before the CLI
// read the file).
func pinnedTLS(pinned []byte, hostname string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The check is VerifyConnection's: the pinned certificate may name
		// the public host name, not the loopback address dialed.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the admin listener sent no certificate")
			}
			if bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: hostname, Intermediates: inter})
			if err != nil {
				return fmt.Errorf("the admin listener's certificate is not the relay's certificate file, nor valid for %s: %w", hostname, err)
			}
			return nil
		},
	}
}
