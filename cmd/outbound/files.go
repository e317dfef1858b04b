package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"outbound/admin"
	"outbound/config"
)

// listenerCert is the one certificate of every TLS listener (465, 587, the
// admin listener, the provider webhook listener), all served through get.
// From files, it is held so that SIGHUP can swap in a renewed one
// (certbot's deploy hook runs `systemctl reload outbound`) without closing
// connections or stopping delivery; under [acme] it comes from acme, which
// renews it by itself.
type listenerCert struct {
	cfg  config.Config
	path string
	cur  atomic.Pointer[tls.Certificate]
	// acme, when [acme] is enabled, is the source of the certificate;
	// path and cur are then unused.
	acme *acmeCert
	// lastErr is the last SIGHUP reload failure, for status.
	lastErr atomic.Pointer[string]
}

func loadListenerCert(cfg config.Config, log *slog.Logger) (*listenerCert, error) {
	if cfg.ACME.Enabled {
		a, err := startACME(cfg, log.With("component", "acme"))
		if err != nil {
			return nil, err
		}
		return &listenerCert{cfg: cfg, path: filepath.Join(cfg.DataDir, "acme"), acme: a}, nil
	}
	cert, path, err := loadOrCreateCertificate(cfg)
	if err != nil {
		return nil, err
	}
	c := &listenerCert{cfg: cfg, path: path}
	c.cur.Store(&cert)
	return c, nil
}

// get is the listeners' tls.Config.GetCertificate.
func (c *listenerCert) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.acme != nil {
		return c.acme.get(hello)
	}
	return c.cur.Load(), nil
}

// status is GET /api/tls and the expiry gauge's source.
func (c *listenerCert) status() admin.TLSStatus {
	if c.acme != nil {
		return c.acme.status()
	}
	st := admin.TLSStatus{Source: "file"}
	if c.cfg.TLS.Cert == "" {
		st.Source = "self-signed"
	}
	if leaf, err := x509.ParseCertificate(c.cur.Load().Certificate[0]); err == nil {
		st.Names, st.Issuer, st.NotAfter = leaf.DNSNames, leaf.Issuer.CommonName, leaf.NotAfter
	}
	if e := c.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// expiry is the certificate's expiry in Unix seconds, 0 while there is
// none: the outbound_tls_certificate_expiry_timestamp_seconds gauge.
func (c *listenerCert) expiry() float64 {
	if t := c.status().NotAfter; !t.IsZero() {
		return float64(t.Unix())
	}
	return 0
}

// stop ends ACME renewals.
func (c *listenerCert) stop(ctx context.Context) error {
	if c.acme != nil {
		return c.acme.stop(ctx)
	}
	return nil
}

// reload reads the certificate and key again. When they do not load, or
// do not match, the certificate in use stays and the error says why.
// Under [acme] there is nothing to reload: renewals apply by themselves.
func (c *listenerCert) reload() (*x509.Certificate, error) {
	if c.acme != nil {
		return c.acme.leaf()
	}
	cert, _, err := loadOrCreateCertificate(c.cfg)
	if err != nil {
		msg := err.Error()
		c.lastErr.Store(&msg)
		return nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.path, err)
	}
	c.cur.Store(&cert)
	c.lastErr.Store(nil)
	return leaf, nil
}

// loadOrCreateCertificate returns the listeners' certificate: the
// configured one, or a self-signed ECDSA P-256 certificate generated in
// data_dir/tls on first start (ECDSA handshakes cost a third of RSA's).
func loadOrCreateCertificate(cfg config.Config) (tls.Certificate, string, error) {
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return cert, "", fmt.Errorf("tls.cert / tls.key: %w", err)
		}
		return cert, cfg.TLS.Cert, nil
	}
	dir := filepath.Join(cfg.DataDir, "tls")
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		return cert, certPath, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cfg.Hostname, Organization: []string{"outbound self-signed"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{cfg.Hostname},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if cfg.Hostname != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, "localhost")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, "", err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, "", err
	}
	fmt.Fprintf(os.Stderr, "outbound: generated a self-signed certificate for %s at %s\n", cfg.Hostname, certPath)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	return cert, certPath, err
}

// loadOrCreateToken returns the admin API bearer token, creating
// data_dir/admin.token (mode 0600) on first start.
func loadOrCreateToken(dataDir string) (token, path string, err error) {
	path = filepath.Join(dataDir, "admin.token")
	data, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, path, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", path, fmt.Errorf("reading admin token: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", path, err
	}
	token = hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", path, fmt.Errorf("writing admin token: %w", err)
	}
	return token, path, nil
}

// readToken is the CLI's side: the token the running server created.
func readToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "admin.token")
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s does not exist: start the relay first (outbound serve) with the same -config", path)
		}
		return "", fmt.Errorf("reading %s: %w (run the CLI as the user that runs the relay)", path, err)
	}
	return strings.TrimSpace(string(data)), nil
}
