package e2e

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// servedCert returns the certificate a new connection to addr is given:
// with implicit TLS from the handshake, on the STARTTLS listener after
// STARTTLS.
func (r *relay) servedCert(implicit bool) *x509.Certificate {
	r.t.Helper()
	c, err := r.dial(implicit)
	if err != nil {
		r.t.Fatalf("dial (implicit %v): %v", implicit, err)
	}
	defer c.Close()
	// After STARTTLS the handshake happens with the next command.
	if err := c.Noop(); err != nil {
		r.t.Fatalf("NOOP (implicit %v): %v", implicit, err)
	}
	state, ok := c.TLSConnectionState()
	if !ok || len(state.PeerCertificates) == 0 {
		r.t.Fatalf("no TLS state (implicit %v)", implicit)
	}
	return state.PeerCertificates[0]
}

// A renewed certificate is taken into use on SIGHUP (what `systemctl
// reload outbound` sends) on both listeners, without a restart; a broken
// pair is refused and the certificate in use stays.
func TestSIGHUPReloadsTheCertificate(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.start()
	before := r.servedCert(true)

	certPEM, keyPEM := r.CA.IssuePEM(t, "localhost", "127.0.0.1")
	keyFile := filepath.Join(r.dir, "relay-key.pem")
	testutil.WriteFile(t, r.dir, "relay-cert.pem", certPEM)
	testutil.WriteFile(t, r.dir, "relay-key.pem", keyPEM)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the certificate reload", func() bool { return strings.Contains(r.log(), "certificate reloaded") })
	for _, implicit := range []bool{true, false} {
		if got := r.servedCert(implicit); got.SerialNumber.Cmp(before.SerialNumber) == 0 {
			t.Fatalf("implicit=%v: still the old certificate (serial %s) after SIGHUP", implicit, got.SerialNumber)
		}
	}
	renewed := r.servedCert(true)

	// A key that does not belong to the certificate is refused.
	_, otherKey := r.CA.IssuePEM(t, "localhost")
	if err := os.WriteFile(keyFile, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 10*time.Second, "the failed reload to be logged", func() bool {
		return strings.Contains(r.log(), "certificate reload failed; keeping the current certificate")
	})
	if got := r.servedCert(false); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Fatalf("after a failed reload the relay serves serial %s, want the renewed %s", got.SerialNumber, renewed.SerialNumber)
	}
	// Nothing else was disturbed: the relay still takes and delivers mail.
	r.addUser("app@example.com", "app password 1")
	r.sendAs("app@example.com", "app password 1", "after reloads")
	up.Wait(t, 1, 10*time.Second)
}
