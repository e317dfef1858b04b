package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/textproto"
	"strings"
	"time"
)

// checkListener connects to a submission listener as a mail client does
// (TLS at once, or STARTTLS after the greeting) and reports two results:
// whether it answers with a 220 greeting and TLS, and whether the
// certificate it serves would be trusted for Hostname.
func checkListener(ctx context.Context, o *Options, addr string, starttls bool) []Result {
	kind := "implicit TLS"
	if starttls {
		kind = "STARTTLS"
	}
	name := fmt.Sprintf("listener %s (%s)", addr, kind)
	certName := "certificate on " + addr
	chain, err := handshake(ctx, o, addr, starttls)
	if err != nil {
		return []Result{
			fail(name, err.Error(), "start `outbound serve` and check [submission] "+map[bool]string{false: "implicit_tls", true: "starttls"}[starttls]+" and the firewall"),
			fail(certName, "not checked: no TLS connection", "fix the listener first"),
		}
	}
	return []Result{
		pass(name, "220 greeting and TLS"),
		checkCertificate(o, certName, chain),
	}
}

// handshake dials addr, reads the greeting and completes TLS, and returns
// the chain the server sent. It verifies nothing: checkCertificate does,
// so that an untrusted certificate is reported rather than a failed
// connection.
func handshake(ctx context.Context, o *Options, addr string, starttls bool) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	raw, err := o.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot connect: %w", err)
	}
	defer raw.Close()
	if d, ok := ctx.Deadline(); ok {
		raw.SetDeadline(d)
	}
	cfg := &tls.Config{ServerName: o.Hostname, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if !starttls {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		if err := greeting(textproto.NewConn(tc)); err != nil {
			return nil, err
		}
		return tc.ConnectionState().PeerCertificates, nil
	}
	tp := textproto.NewConn(raw)
	if err := greeting(tp); err != nil {
		return nil, err
	}
	if err := tp.PrintfLine("EHLO doctor.invalid"); err != nil {
		return nil, err
	}
	_, ehlo, err := tp.ReadResponse(250)
	if err != nil {
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	if !strings.Contains(strings.ToUpper(ehlo), "STARTTLS") {
		return nil, fmt.Errorf("STARTTLS is not offered after EHLO")
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fmt.Errorf("STARTTLS: %w", err)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake after STARTTLS: %w", err)
	}
	return tc.ConnectionState().PeerCertificates, nil
}

// greeting reads the server's greeting, which must be 220.
func greeting(tp *textproto.Conn) error {
	code, msg, err := tp.ReadResponse(0)
	if err != nil && code == 0 {
		return fmt.Errorf("no SMTP greeting: %w", err)
	}
	if code != 220 {
		return fmt.Errorf("greeting %d %s, want 220", code, msg)
	}
	return nil
}

// checkCertificate verifies chain as a mail client would: valid for
// Hostname, issued by a trusted CA, and valid for MinValidity yet.
func checkCertificate(o *Options, name string, chain []*x509.Certificate) Result {
	if len(chain) == 0 {
		return fail(name, "no certificate sent", "configure [tls] cert/key or [acme]")
	}
	leaf := chain[0]
	now := o.Now()
	expiry := leaf.NotAfter.UTC().Format(time.RFC3339)
	if isSelfSigned(leaf) {
		return fail(name, fmt.Sprintf("self-signed certificate for %s: mail clients refuse it", strings.Join(names(leaf), ", ")),
			"configure [tls] cert/key or [acme]")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: o.Hostname, Roots: o.Roots, Intermediates: inter, CurrentTime: now})
	switch {
	case now.After(leaf.NotAfter):
		return fail(name, "expired on "+expiry, "renew the certificate ([acme] renews by itself; for [tls] cert/key replace the files and send SIGHUP)")
	case err != nil:
		return fail(name, fmt.Sprintf("does not verify for %s: %v", o.Hostname, err),
			fmt.Sprintf("serve a certificate from a public CA covering %s, with its intermediates in the cert file ([tls] cert/key or [acme])", o.Hostname))
	case leaf.NotAfter.Sub(now) < o.MinValidity:
		return fail(name, "expires on "+expiry, "renew the certificate now ([acme] renews ahead of expiry: check its log; for [tls] cert/key replace the files and send SIGHUP)")
	}
	return pass(name, fmt.Sprintf("valid for %s, issued by %s, expires %s", o.Hostname, leaf.Issuer.CommonName, expiry))
}

// isSelfSigned reports whether leaf signed itself (the default certificate
// generated in data_dir/tls).
func isSelfSigned(leaf *x509.Certificate) bool {
	return bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
}

func names(c *x509.Certificate) []string {
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 {
		out = append(out, c.Subject.CommonName)
	}
	return out
}
