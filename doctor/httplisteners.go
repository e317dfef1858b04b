package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
)

// HTTPListener is an HTTP listener of the relay besides the admin one: the
// providers' webhooks, autoconfig's own, the send API's.
type HTTPListener struct {
	// Section is its configuration section ("provider_webhooks"), named
	// with its listen key in the fix.
	Section string
	// Addr is where to dial it.
	Addr string
	// TLS says it serves HTTPS, as it does on any address but loopback;
	// on loopback it serves plain HTTP behind a proxy that terminates TLS.
	TLS bool
}

// checkHTTPListener asks l for / as a provider or a mail client would
// and reports whether it answers; an HTTPS listener also gets its
// certificate checked like the submission listeners' (providers and
// Thunderbird refuse one they do not trust). Any HTTP status is an
// answer: the paths the listener serves need a token or a body.
func checkHTTPListener(ctx context.Context, o *Options, l HTTPListener) []Result {
	kind := "plain HTTP on loopback"
	if l.TLS {
		kind = "HTTPS"
	}
	name := fmt.Sprintf("listener %s ([%s] listen, %s)", l.Addr, l.Section, kind)
	fix := fmt.Sprintf("start `outbound serve` and check [%s] listen and the firewall", l.Section)
	chain, status, err := getRoot(ctx, o, l.Addr, l.TLS)
	if !l.TLS {
		if err != nil {
			return []Result{fail(name, err.Error(), fix)}
		}
		return []Result{pass(name, "answers plain HTTP ("+status+"); the proxy in front of it terminates TLS")}
	}
	certName := "certificate on " + l.Addr
	if err != nil {
		return []Result{
			fail(name, err.Error(), fix),
			fail(certName, "not checked: no TLS connection", "fix the listener first"),
		}
	}
	return []Result{
		pass(name, "TLS and an HTTP answer ("+status+")"),
		checkCertificate(o, certName, chain),
	}
}

// getRoot dials addr, completes TLS when useTLS, sends GET / and reads
// the response's status. Like handshake it verifies nothing, and returns
// the chain the server sent for checkCertificate.
func getRoot(ctx context.Context, o *Options, addr string, useTLS bool) ([]*x509.Certificate, string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := o.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("cannot connect: %w", err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	var chain []*x509.Certificate
	if useTLS {
		tc := tls.Client(conn, &tls.Config{ServerName: o.Hostname, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, "", fmt.Errorf("TLS handshake: %w", err)
		}
		chain = tc.ConnectionState().PeerCertificates
		conn = tc
	}
	host := o.Hostname
	if host == "" {
		host, _, _ = net.SplitHostPort(addr)
	}
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, "", fmt.Errorf("no HTTP answer to GET /: %w", err)
	}
	resp.Body.Close()
	return chain, resp.Status, nil
}
