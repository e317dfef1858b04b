package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"outbound/admin"
	"outbound/config"
)

// acmeCert obtains and renews the listeners' certificate over ACME
// ([acme]) with certmagic, keeping certificates and the account key in
// data_dir/acme. certmagic renews in the background once a third of the
// certificate's lifetime is left, so new connections get the renewed
// certificate without a restart.
//
// Until the first certificate is obtained (the CA unreachable at the first
// start, say) get returns an error, so every TLS handshake is refused:
// the relay serves nothing a client could not verify, and mail clients
// retry later. certmagic retries issuance with backoff (after 1, 2, 2, 5,
// 10 minutes... growing to every 6 hours, for up to 30 days) and each
// failure is logged with its attempt number. A failed renewal is retried
// on the same schedule, looked at every 10 minutes, while the current
// certificate is still served. The schedule is certmagic's and cannot be
// set; e2e/acme_test.go waits for its first retry.
type acmeCert struct {
	magic  *certmagic.Config
	cache  *certmagic.Cache
	names  []string
	log    *slog.Logger
	cancel context.CancelFunc

	mu sync.Mutex
	// lastErr is the last failure to obtain or renew, cleared when a
	// certificate is obtained.
	lastErr string
}

// testRenewCheckEnv names the test-only setting of how often certmagic
// looks for certificates to renew.
const testRenewCheckEnv = "OUTBOUND_TEST_ONLY_ACME_RENEW_CHECK_INTERVAL"

// startACME loads the certificate kept in data_dir/acme, if any, and
// starts obtaining or renewing it in the background.
func startACME(cfg config.Config, log *slog.Logger) (*acmeCert, error) {
	a := &acmeCert{names: cfg.ACMENames(), log: log}
	roots, err := acmeRoots(cfg.ACME.CAFile)
	if err != nil {
		return nil, err
	}
	// certmagic logs through zap; what an operator needs (obtained,
	// failed and why) is logged here from its events instead, in the
	// relay's own log format.
	nop := zap.NewNop()
	cacheOpts := certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return a.magic, nil },
		Logger:           nop,
	}
	// certmagic looks for certificates to renew every 10 minutes. The
	// end-to-end test of a renewal sets this loudly named variable to
	// look every second, with a CA issuing certificates of seconds.
	if v := os.Getenv(testRenewCheckEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", testRenewCheckEnv, err)
		}
		log.Warn("acme: renewal check interval set for a test", "env", testRenewCheckEnv, "interval", d)
		cacheOpts.RenewCheckInterval = d
	}
	a.cache = certmagic.NewCache(cacheOpts)
	a.magic = certmagic.New(a.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: filepath.Join(cfg.DataDir, "acme")},
		Logger:  nop,
		OnEvent: a.onEvent,
		// Clients that send no server name (those given an IP address),
		// or another name, get the relay's certificate all the same.
		DefaultServerName:  a.names[0],
		FallbackServerName: a.names[0],
	})
	issuer := certmagic.ACMEIssuer{
		CA:                      cfg.ACME.Directory,
		Email:                   cfg.ACME.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    cfg.ACME.Challenge != "http-01",
		DisableTLSALPNChallenge: cfg.ACME.Challenge != "tls-alpn-01",
		Logger:                  nop,
	}
	listen := cfg.ACME.HTTPListen
	if cfg.ACME.Challenge == "tls-alpn-01" {
		listen = cfg.ACME.TLSListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("acme: port %q: %w", port, err)
	}
	issuer.ListenHost, issuer.AltHTTPPort, issuer.AltTLSALPNPort = host, p, p
	a.magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(a.magic, issuer)}

	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	log.Info("acme: managing the certificate", "names", a.names, "directory", cfg.ACME.Directory,
		"challenge", cfg.ACME.Challenge, "listen", listen, "storage", filepath.Join(cfg.DataDir, "acme"))
	if err := a.magic.ManageAsync(ctx, a.names); err != nil {
		cancel()
		a.cache.Stop()
		return nil, fmt.Errorf("acme: %w", err)
	}
	if _, err := a.leaf(); err != nil {
		log.Warn("acme: no certificate yet; TLS handshakes are refused on every listener until one is obtained", "names", a.names)
	}
	return a, nil
}

// acmeRoots are the system roots plus caFile's, for the directory's HTTPS.
func acmeRoots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil // certmagic then uses the system roots
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("acme.ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("acme.ca_file: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// onEvent logs what certmagic does and keeps the last error for status.
func (a *acmeCert) onEvent(ctx context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtaining":
		a.log.Info("acme: requesting a certificate", "name", data["identifier"])
	case "cert_obtained":
		a.mu.Lock()
		a.lastErr = ""
		a.mu.Unlock()
		attrs := []any{"name", data["identifier"], "renewal", data["renewal"]}
		// The event comes before the certificate is in the cache: read
		// the one just stored.
		if leaf, err := a.stored(ctx, data["certificate_path"]); err == nil {
			attrs = append(attrs, "issuer", leaf.Issuer.CommonName, "not_after", leaf.NotAfter)
		}
		a.log.Info("acme: certificate obtained; new connections use it", attrs...)
	case "cert_failed":
		msg := fmt.Sprint(data["error"])
		a.mu.Lock()
		a.lastErr = msg
		a.mu.Unlock()
		attrs := []any{"name", data["identifier"], "renewal", data["renewal"], "err", msg}
		// An obtain (not a renewal) counts its attempts in ctx, from 0.
		if n, ok := ctx.Value(certmagic.AttemptsCtxKey).(*int); ok {
			attrs = append(attrs, "attempt", *n+1)
		}
		a.log.Error("acme: could not obtain the certificate; retrying with backoff", attrs...)
	}
	return nil
}

// stored reads the certificate at key in certmagic's storage.
func (a *acmeCert) stored(ctx context.Context, key any) (*x509.Certificate, error) {
	k, _ := key.(string)
	data, err := a.magic.Storage.Load(ctx, k)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// get is the listeners' GetCertificate: the managed certificate, or an
// error (a refused handshake) while there is none.
func (a *acmeCert) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := a.magic.GetCertificate(hello)
	if err != nil {
		return nil, fmt.Errorf("no certificate obtained over ACME yet for %v: %w", a.names, err)
	}
	return c, nil
}

// leaf is the certificate that expires first among the names' (certmagic
// keeps one certificate per name), each name's newest should the cache
// hold the one it is replacing too; an error while any name has none.
func (a *acmeCert) leaf() (*x509.Certificate, error) {
	var first *x509.Certificate
	for _, name := range a.names {
		var newest *x509.Certificate
		for _, c := range a.cache.AllMatchingCertificates(name) {
			if c.Leaf != nil && (newest == nil || c.Leaf.NotAfter.After(newest.NotAfter)) {
				newest = c.Leaf
			}
		}
		if newest == nil {
			return nil, fmt.Errorf("no certificate yet for %s", name)
		}
		if first == nil || newest.NotAfter.Before(first.NotAfter) {
			first = newest
		}
	}
	return first, nil
}

// status is GET /api/tls for an ACME certificate.
func (a *acmeCert) status() admin.TLSStatus {
	st := admin.TLSStatus{Source: "acme", Names: a.names}
	if leaf, err := a.leaf(); err == nil {
		st.Issuer, st.NotAfter = leaf.Issuer.CommonName, leaf.NotAfter
	}
	a.mu.Lock()
	st.LastError = a.lastErr
	a.mu.Unlock()
	return st
}

// stop ends renewals and certmagic's maintenance goroutine.
func (a *acmeCert) stop(context.Context) error {
	a.cancel()
	a.cache.Stop()
	return nil
}
