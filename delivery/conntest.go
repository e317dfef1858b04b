package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"time"

	"outbound/internal/netutil"
	"outbound/route"
)

// ConnectionStep is one step of the connection test.
type ConnectionStep struct {
	// Name is "connect", "greeting", "ehlo", "tls", "auth" or "quit".
	Name string `json:"name"`
	// Status is "ok", "failed" or "skipped".
	Status   string        `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	// Reply is the upstream's reply at this step, when it gave one.
	Reply string `json:"reply,omitempty"`
	// Error says what went wrong; Hint what probably to change.
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
}

// ConnectionReport is the result of a connection test, step by step.
type ConnectionReport struct {
	OK     bool             `json:"ok"`
	Target string           `json:"target"` // host:port (tls mode)
	Steps  []ConnectionStep `json:"steps"`
}

// Failed returns the failing step, or nil.
func (r *ConnectionReport) Failed() *ConnectionStep {
	for i := range r.Steps {
		if r.Steps[i].Status == "failed" {
			return &r.Steps[i]
		}
	}
	return nil
}

// String formats the report for people, one line per step.
func (r *ConnectionReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "connection test of %s:\n", r.Target)
	for _, s := range r.Steps {
		d := s.Duration.Round(time.Millisecond)
		if s.Duration < time.Millisecond {
			d = s.Duration.Round(time.Microsecond)
		}
		fmt.Fprintf(&b, "  %-8s %-7s %8s", s.Name, s.Status, d)
		if s.Reply != "" {
			fmt.Fprintf(&b, "  %s", s.Reply)
		}
		b.WriteString("\n")
		if s.Error != "" {
			fmt.Fprintf(&b, "           error: %s\n", s.Error)
		}
		if s.Hint != "" {
			fmt.Fprintf(&b, "           hint:  %s\n", s.Hint)
		}
	}
	if r.OK {
		b.WriteString("result: ok\n")
	} else {
		b.WriteString("result: FAILED\n")
	}
	return b.String()
}

// ConnectionTest connects to up step by step — connect, greeting, EHLO,
// TLS (implicit or STARTTLS, certificate verified), AUTH, QUIT — and
// reports each step's time, the upstream's reply and, at the failing step,
// a hint. It is what an operator runs before saving a smarthost. It is
// written out with net/textproto rather than through Dial so that every
// step, and the reply at the one that fails, is visible. localName is the
// EHLO name ("" means "localhost"); timeout bounds each network step (0
// means 15 seconds). The password is never put in the report.
func ConnectionTest(ctx context.Context, up *route.Upstream, localName string, timeout time.Duration) ConnectionReport {
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	if localName == "" {
		localName = "localhost"
	}
	rep := ConnectionReport{Target: fmt.Sprintf("%s (%s)", up.Addr(), up.TLSMode)}
	tc := &tester{up: up, localName: localName, timeout: timeout, rep: &rep}
	tc.run(ctx)
	rep.OK = rep.Failed() == nil
	return rep
}

type tester struct {
	up        *route.Upstream
	localName string
	timeout   time.Duration
	rep       *ConnectionReport
	conn      net.Conn
	tp        *textproto.Conn
}

// step runs f as the named step; f returns the reply text and an error.
func (c *tester) step(name string, f func() (string, error)) bool {
	start := time.Now()
	if c.conn != nil {
		c.conn.SetDeadline(start.Add(c.timeout))
	}
	reply, err := f()
	s := ConnectionStep{Name: name, Status: "ok", Duration: time.Since(start), Reply: oneLine(reply)}
	if err != nil {
		s.Status = "failed"
		var te *textproto.Error
		if errors.As(err, &te) {
			s.Reply = oneLine(fmt.Sprintf("%d %s", te.Code, te.Msg))
		}
		s.Error = err.Error()
		s.Hint = c.hint(name, err)
	}
	c.rep.Steps = append(c.rep.Steps, s)
	return err == nil
}

func (c *tester) skip(names ...string) {
	for _, n := range names {
		c.rep.Steps = append(c.rep.Steps, ConnectionStep{Name: n, Status: "skipped"})
	}
}

func (c *tester) run(ctx context.Context) {
	up := c.up
	tlsConfig := &tls.Config{ServerName: up.Host, RootCAs: up.RootCAs, MinVersion: tls.VersionTLS12}
	ok := c.step("connect", func() (string, error) {
		conn, err := dialer(up, c.timeout).DialContext(ctx, "tcp", up.Addr())
		if err != nil {
			return "", err
		}
		c.conn = conn
		return "", nil
	})
	if !ok {
		c.skip("greeting", "ehlo", "tls", "auth", "quit")
		return
	}
	defer c.conn.Close()
	// Give up at once when the caller's context ends.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()

	if up.TLSMode == "implicit" {
		if !c.step("tls", func() (string, error) { return c.handshake(tlsConfig) }) {
			c.skip("greeting", "ehlo", "auth", "quit")
			return
		}
	}
	if c.tp == nil {
		c.tp = textproto.NewConn(c.conn)
	}
	if !c.step("greeting", func() (string, error) {
		_, msg, err := c.tp.ReadResponse(220)
		return "220 " + msg, err
	}) {
		c.skip("ehlo", "tls", "auth", "quit")
		return
	}
	var exts string
	if !c.step("ehlo", func() (string, error) {
		var err error
		exts, err = command(c.tp, 250, "EHLO %s", c.localName)
		return "250 " + exts, err
	}) {
		c.skip("tls", "auth", "quit")
		return
	}
	switch up.TLSMode {
	case "starttls":
		if !c.step("tls", func() (string, error) {
			if !hasExt(exts, "STARTTLS") {
				return "", ErrNoTLS
			}
			if reply, err := command(c.tp, 220, "STARTTLS"); err != nil {
				return reply, err
			}
			if _, err := c.handshake(tlsConfig); err != nil {
				return "", err
			}
			var err error
			exts, err = command(c.tp, 250, "EHLO %s", c.localName)
			return "TLS established; 250 " + exts, err
		}) {
			c.skip("auth", "quit")
			return
		}
	case "none":
		c.skip("tls")
	}
	if up.Username == "" {
		c.skip("auth")
	} else if !c.step("auth", func() (string, error) { return c.auth(exts) }) {
		c.skip("quit")
		return
	}
	c.step("quit", func() (string, error) {
		reply, err := command(c.tp, 221, "QUIT")
		return "221 " + reply, err
	})
}

func (c *tester) handshake(cfg *tls.Config) (string, error) {
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return "", err
	}
	c.conn = tc
	c.tp = textproto.NewConn(tc)
	st := tc.ConnectionState()
	return fmt.Sprintf("%s, certificate for %s verified", tls.VersionName(st.Version), st.PeerCertificates[0].Subject.CommonName), nil
}

func (c *tester) auth(exts string) (string, error) {
	var mechs []string
	for _, line := range strings.Split(exts, "\n") {
		if f := strings.Fields(strings.ToUpper(line)); len(f) > 0 && f[0] == "AUTH" {
			mechs = f[1:]
		}
	}
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	switch {
	case has("PLAIN"):
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + c.up.Username + "\x00" + c.up.Password))
		msg, err := command(c.tp, 235, "AUTH PLAIN %s", ir)
		return "235 " + msg, err
	case has("LOGIN"):
		if _, err := command(c.tp, 334, "AUTH LOGIN"); err != nil {
			return "", err
		}
		if _, err := command(c.tp, 334, "%s", base64.StdEncoding.EncodeToString([]byte(c.up.Username))); err != nil {
			return "", err
		}
		msg, err := command(c.tp, 235, "%s", base64.StdEncoding.EncodeToString([]byte(c.up.Password)))
		return "235 " + msg, err
	}
	return "", ErrNoAuth
}

// hasExt reports whether an EHLO reply offers the extension name. The
// reply's first line is the server's name, not an extension.
func hasExt(exts, name string) bool {
	for _, line := range strings.Split(exts, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "\n", " | ")
}

// hint says what probably to change, from the step that failed and how.
func (c *tester) hint(step string, err error) string {
	t := c.up
	port := strconv.Itoa(t.Port)
	var (
		te       *textproto.Error
		rhe      tls.RecordHeaderError
		hostErr  x509.HostnameError
		authErr  x509.UnknownAuthorityError
		certErr  x509.CertificateInvalidError
		dnsErr   *net.DNSError
		netErr   net.Error
		verifErr *tls.CertificateVerificationError
	)
	var notPublic *netutil.NotPublicError
	switch {
	case errors.As(err, &notPublic):
		return "a sender's own SMTP server must be on a public address; only the operator can allow others (web.allow_private_hosts)"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("the host name %s does not resolve: check its spelling", t.Host)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing accepts connections on %s port %s: check the host and port (usually 587 for starttls, 465 for implicit)", t.Host, port)
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the certificate is not for %s (%v): use the host name the certificate names, as the provider documents it", t.Host, hostErr.Certificate.DNSNames)
	case errors.As(err, &authErr):
		return "the certificate is signed by an unknown authority: if the upstream uses a private CA, give its certificate with --ca-file"
	case errors.As(err, &certErr):
		return "the certificate is not valid (expired or not for server use): the upstream must fix its certificate"
	case errors.As(err, &verifErr):
		return "the certificate could not be verified: check the host name, or give the upstream's CA with --ca-file"
	case errors.As(err, &rhe):
		return fmt.Sprintf("the server answered in clear text, not TLS: port %s speaks plain SMTP; use --tls starttls (or the provider's implicit-TLS port, usually 465)", port)
	case errors.Is(err, ErrNoTLS):
		if t.Port == 465 {
			return "port 465 normally expects implicit TLS: use --tls implicit"
		}
		return "this port does not offer STARTTLS: use the provider's STARTTLS port (usually 587), or --tls implicit on its TLS port (usually 465)"
	case errors.Is(err, ErrNoAuth):
		return "the upstream offers no AUTH we can use here: check the port is the submission port, not port 25 for server-to-server mail"
	case errors.As(err, &te) && te.Code == 535:
		return "the upstream refused the username or password: check both (SendGrid's username is literally \"apikey\"; Gmail needs an app password)"
	case errors.As(err, &te) && te.Code == 530:
		return "the upstream requires something first (usually TLS): use --tls starttls or implicit"
	case errors.As(err, &te) && te.Code >= 500:
		return "the upstream refused this step permanently; its reply says why"
	case errors.As(err, &te):
		return "the upstream refused this step temporarily; try again later"
	case errors.As(err, &netErr) && netErr.Timeout():
		switch step {
		case "connect":
			return fmt.Sprintf("no answer from %s port %s: a firewall may drop the port (many networks block 25, 465 and 587), or the host is wrong", t.Host, port)
		case "greeting":
			if t.TLSMode != "implicit" {
				return fmt.Sprintf("connected, but no greeting: port %s probably expects implicit TLS; use --tls implicit", port)
			}
			return "connected, but the upstream never greeted: it may be overloaded or not an SMTP server"
		case "tls":
			if t.TLSMode == "implicit" {
				return fmt.Sprintf("the TLS handshake got no answer: port %s probably speaks plain SMTP; use --tls starttls", port)
			}
		}
		return "the upstream stopped answering: try again, or check the port and TLS mode"
	case closedByPeer(err):
		return "the upstream closed the connection: check the port and TLS mode"
	}
	return ""
}

// closedByPeer reports whether the upstream ended the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
