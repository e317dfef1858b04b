package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/internal/testutil"
)

// The ACME scenarios run Let's Encrypt's test CA, Pebble, and its DNS test
// server (answering every name with 127.0.0.1), both on loopback, built
// into bin/test-tools by scripts/install-test-deps.sh (make deps).

// pebble is one running Pebble with its DNS server.
type pebble struct {
	Directory string // the ACME directory URL
	mgmt      string // the management API's address
	pool      *x509.CertPool
}

// testTool is the path of a binary installed by install-test-deps.sh; the
// test fails, never skips, when it is missing.
func testTool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(repoRoot, "bin", "test-tools", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run scripts/install-test-deps.sh (make deps) to build Pebble into bin/test-tools", p)
	}
	return p
}

// startPebble starts pebble-challtestsrv as the DNS server and Pebble,
// which validates http-01 on httpPort and tls-alpn-01 on tlsPort of
// 127.0.0.1, its HTTPS served with a certificate from r.CA.
func startPebble(t *testing.T, r *relay, httpPort, tlsPort string, validity time.Duration) *pebble {
	t.Helper()
	return startPebbleAt(t, r, testutil.FreePort(t), httpPort, tlsPort, validity)
}

// startPebbleAt is startPebble with Pebble's directory served on listen
// (host:port), for a relay configured with that address before the CA is
// up.
func startPebbleAt(t *testing.T, r *relay, listen, httpPort, tlsPort string, validity time.Duration) *pebble {
	t.Helper()
	dns := testutil.FreePort(t)
	run := func(name string, args ...string) {
		cmd := exec.Command(testTool(t, name), args...)
		logf, err := os.Create(filepath.Join(r.dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
		setDeathSignal(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
			if t.Failed() {
				data, _ := os.ReadFile(logf.Name())
				t.Logf("%s log:\n%s", name, data)
			}
		})
	}
	// Only DNS: every A query is 127.0.0.1, no AAAA, so Pebble
	// validates against the relay's challenge listeners on loopback.
	run("pebble-challtestsrv", "-dnsserver", dns, "-management", testutil.FreePort(t),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")

	p := &pebble{mgmt: testutil.FreePort(t), pool: r.CA.Pool}
	p.Directory = "https://" + listen + "/dir"
	certPEM, keyPEM := r.CA.IssuePEM(t, "127.0.0.1", "localhost")
	cfg := fmt.Sprintf(`{"pebble": {"listenAddress": %q, "managementListenAddress": %q,
		"certificate": %q, "privateKey": %q, "httpPort": %s, "tlsPort": %s,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": {"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
		"profiles": {"default": {"description": "default", "validityPeriod": %d}}}}`,
		listen, p.mgmt, testutil.WriteFile(t, r.dir, "pebble-cert.pem", certPEM), testutil.WriteFile(t, r.dir, "pebble-key.pem", keyPEM),
		httpPort, tlsPort, int(validity.Seconds()))
	run("pebble", "-config", testutil.WriteFile(t, r.dir, "pebble.json", []byte(cfg)), "-dnsserver", dns, "-strict=false")
	waitUntil(t, 20*time.Second, "Pebble's directory", func() bool {
		_, err := p.get("https://" + listen + "/dir")
		return err == nil
	})
	return p
}

func (p *pebble) get(url string) ([]byte, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// root is Pebble's issuing root, from its management API: what a client
// trusting the CA verifies the relay's certificate against.
func (p *pebble) root(t *testing.T) *x509.CertPool {
	t.Helper()
	data, err := p.get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("Pebble's /roots/0 is not PEM: %q", data)
	}
	return pool
}

// acmeRelay is a relay with only [acme] for its certificate.
func acmeRelay(t *testing.T, challenge string) (*relay, string) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	delete(r.cfg, "tls")
	port := testutil.FreePort(t)
	r.cfg.set("acme", "enabled", "true")
	r.cfg.set("acme", "challenge", q(challenge))
	r.cfg.set("acme", "ca_file", q(r.CAFile))
	r.cfg.set("acme", "email", q("postmaster@e2e.test"))
	if challenge == "http-01" {
		r.cfg.set("acme", "http_listen", q(port))
	} else {
		r.cfg.set("acme", "tls_listen", q(port))
	}
	_, p, _ := net.SplitHostPort(port)
	return r, p
}

// tlsStatus is GET /api/tls on the relay's admin listener.
func (r *relay) tlsStatus(t *testing.T) map[string]any {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(r.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+r.AdminAddr+"/api/tls", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A relay configured with only [acme] obtains its certificate from the CA
// through either challenge, one per name, and clients that trust the CA's
// root verify it on 465 (implicit TLS) and 587 (STARTTLS); its issuer and
// expiry show in /api/tls and /metrics.
func TestACMEObtainsTheCertificateClientsVerify(t *testing.T) {
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			r, port := acmeRelay(t, challenge)
			httpPort, tlsPort := port, "1" // the unused one: a port nothing answers
			if challenge == "tls-alpn-01" {
				httpPort, tlsPort = "1", port
			}
			p := startPebble(t, r, httpPort, tlsPort, 90*24*time.Hour)
			r.cfg.set("acme", "directory", q(p.Directory))
			// A second name gets its certificate too, served by SNI.
			r.cfg.set("acme", "names", `["relay.e2e.test", "mail.e2e.test"]`)
			r.start()
			waitUntil(t, 60*time.Second, "the certificates obtained", func() bool {
				return strings.Count(r.log(), "acme: certificate obtained") == 2
			})
			if got := servedByName(t, r.ImplicitAddr, p.root(t), "mail.e2e.test"); got.VerifyHostname("mail.e2e.test") != nil {
				t.Errorf("SNI mail.e2e.test got a certificate for %v", got.DNSNames)
			}

			client := &tls.Config{RootCAs: p.root(t), ServerName: "relay.e2e.test", MinVersion: tls.VersionTLS12}
			for _, implicit := range []bool{true, false} {
				var c *smtp.Client
				var err error
				if implicit {
					c, err = smtp.DialTLS(r.ImplicitAddr, client)
				} else {
					c, err = smtp.DialStartTLS(r.StartTLSAddr, client)
				}
				if err == nil {
					err = c.Noop()
				}
				if err != nil {
					t.Fatalf("implicit=%v: a client trusting Pebble's root: %v\n%s", implicit, err, r.log())
				}
				c.Quit()
			}

			st := r.tlsStatus(t)
			if st["source"] != "acme" || !strings.Contains(fmt.Sprint(st["issuer"]), "Pebble") || st["not_after"] == nil || st["last_error"] != nil {
				t.Errorf("/api/tls: %v", st)
			}
			resp, err := http.Get("http://" + r.AdminAddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !regexp.MustCompile(`(?m)^outbound_tls_certificate_expiry_timestamp_seconds [1-9]`).Match(body) {
				t.Errorf("/metrics lacks a certificate expiry:\n%s", body)
			}
		})
	}
}

// With the CA unreachable at the first start the relay starts all the
// same, refuses TLS handshakes on 465 and 587 (nothing a client could not
// verify is served), and says why: in its log, in /api/tls, in `outbound
// doctor` (the certificate renewal check fails with the CA's error and
// the fix) and in /metrics (expiry 0, no certificate). It retries with
// backoff (certmagic's first retry comes a minute after the failure), so
// once the CA listens on its address the relay obtains the certificate
// and new connections get it on both listeners, without a restart.
func TestACMEWithTheCADownRefusesHandshakesThenObtainsWhenItReturns(t *testing.T) {
	r, port := acmeRelay(t, "http-01")
	caAddr := testutil.FreePort(t) // nothing listens there yet
	r.cfg.set("acme", "directory", q("https://"+caAddr+"/dir"))
	r.start()
	waitUntil(t, 30*time.Second, "the failure logged", func() bool {
		return strings.Contains(r.log(), "acme: could not obtain the certificate; retrying with backoff")
	})
	failed := time.Now()
	if !strings.Contains(r.log(), "TLS handshakes are refused") {
		t.Errorf("the log does not say handshakes are refused:\n%s", r.log())
	}
	if !regexp.MustCompile(`could not obtain the certificate.*` + regexp.QuoteMeta(caAddr) + `.*attempt=1\b`).MatchString(r.log()) {
		t.Errorf("the logged failure does not name the CA's address %s and the attempt:\n%s", caAddr, r.log())
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.ImplicitAddr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		c.Close()
		t.Fatal("465 completed a TLS handshake without a certificate from the CA")
	}
	// After STARTTLS the handshake happens with the next command.
	if c, err := smtp.DialStartTLS(r.StartTLSAddr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		err = c.Noop()
		c.Close()
		if err == nil {
			t.Fatal("587 completed STARTTLS without a certificate from the CA")
		}
	}
	if st := r.tlsStatus(t); st["source"] != "acme" || !strings.Contains(fmt.Sprint(st["last_error"]), caAddr) || st["not_after"] != nil {
		t.Errorf("/api/tls while the CA is down: %v", st)
	}
	renewal, code := doctorCheck(t, r, "certificate renewal")
	if code != 1 || renewal.OK || !strings.Contains(renewal.Detail, "the last attempt failed") ||
		!strings.Contains(renewal.Detail, caAddr) || !strings.Contains(renewal.Fix, "[acme]") {
		t.Errorf("doctor while the CA is down (exit %d): %+v", code, renewal)
	}
	if got := certExpiryMetric(t, r); got != "0" {
		t.Errorf("/metrics certificate expiry while there is none: %q, want 0", got)
	}

	// The CA comes back on the address the relay was configured with.
	p := startPebbleAt(t, r, caAddr, port, "1", 90*24*time.Hour)
	waitUntil(t, 5*time.Minute, "the certificate obtained once the CA is back", func() bool {
		return strings.Contains(r.log(), "acme: certificate obtained")
	})
	t.Logf("certificate obtained %s after the first failure was logged", time.Since(failed).Round(time.Second))
	roots := p.root(t)
	if got := servedBy(t, r.ImplicitAddr, roots); !strings.Contains(got.Issuer.CommonName, "Pebble") {
		t.Errorf("465 serves a certificate issued by %q", got.Issuer.CommonName)
	}
	sc, err := smtp.DialStartTLS(r.StartTLSAddr, &tls.Config{RootCAs: roots, ServerName: "relay.e2e.test", MinVersion: tls.VersionTLS12})
	if err == nil {
		err = sc.Noop()
		sc.Quit()
	}
	if err != nil {
		t.Errorf("587: STARTTLS verified against Pebble's root: %v", err)
	}
	if st := r.tlsStatus(t); !strings.Contains(fmt.Sprint(st["issuer"]), "Pebble") || st["not_after"] == nil || st["last_error"] != nil {
		t.Errorf("/api/tls once the CA is back: %v", st)
	}
	if renewal, _ := doctorCheck(t, r, "certificate renewal"); !renewal.OK || !strings.Contains(renewal.Detail, "Pebble") {
		t.Errorf("doctor once the CA is back: %+v", renewal)
	}
	if got := certExpiryMetric(t, r); got == "0" || got == "" {
		t.Errorf("/metrics certificate expiry once obtained: %q", got)
	}
	if !r.running() || r.starts != 1 {
		t.Fatal("the relay was restarted")
	}
}

// doctorResult is one check of `outbound doctor --json`.
type doctorResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

// doctorCheck runs `outbound doctor --json` against r and returns the
// check named name and doctor's exit status.
func doctorCheck(t *testing.T, r *relay, name string) (doctorResult, int) {
	t.Helper()
	res := r.cli("", "doctor", "--json", "--min-free", "1MiB")
	var results []doctorResult
	if err := json.Unmarshal([]byte(res.Stdout), &results); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, res)
	}
	for _, c := range results {
		if c.Name == name {
			return c, res.Code
		}
	}
	t.Fatalf("doctor has no check %q: %s", name, res.Stdout)
	return doctorResult{}, 0
}

// certExpiryMetric is the value of outbound_tls_certificate_expiry_timestamp_seconds
// in r's /metrics, "" when it is missing.
func certExpiryMetric(t *testing.T, r *relay) string {
	t.Helper()
	resp, err := http.Get("http://" + r.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^outbound_tls_certificate_expiry_timestamp_seconds (\S+)$`).FindSubmatch(body)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// servedBy is the certificate a new implicit-TLS connection gets, verified
// against roots for the relay's name.
func servedBy(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	return servedByName(t, addr, roots, "relay.e2e.test")
}

// servedByName is servedBy for the server name name (SNI).
func servedByName(t *testing.T, addr string, roots *x509.CertPool, name string) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("a client trusting the CA's root: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// A certificate renewed ahead of its expiry is served to new connections
// without a restart. The CA issues 20-second certificates and the relay
// looks for renewals every second (a test-only setting), so the renewal
// comes within seconds, as it would come weeks ahead in production.
func TestACMERenewalIsServedWithoutARestart(t *testing.T) {
	t.Setenv("OUTBOUND_TEST_ONLY_ACME_RENEW_CHECK_INTERVAL", "1s")
	r, port := acmeRelay(t, "http-01")
	p := startPebble(t, r, port, "1", 20*time.Second)
	r.cfg.set("acme", "directory", q(p.Directory))
	r.start()
	waitUntil(t, 60*time.Second, "the certificate obtained", func() bool {
		return strings.Contains(r.log(), "acme: certificate obtained")
	})
	roots := p.root(t)
	first := servedBy(t, r.ImplicitAddr, roots)
	waitUntil(t, 60*time.Second, "the certificate renewed", func() bool {
		return regexp.MustCompile(`acme: certificate obtained.*renewal=true`).MatchString(r.log())
	})
	renewed := servedBy(t, r.ImplicitAddr, roots)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("still serial %s after the renewal", first.SerialNumber)
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("the renewed certificate expires %s, not after the first's %s", renewed.NotAfter, first.NotAfter)
	}
	if !r.running() || r.starts != 1 {
		t.Fatal("the relay was restarted")
	}
}
