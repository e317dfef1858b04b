package delivery

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/internal/netutil"
	"outbound/route"
)

// connKey identifies connections that may be shared, and the backoff of
// an upstream: same server, same TLS mode, same login, same owner. The
// owner keeps a user's own SMTP server apart (route.Upstream.Owner):
// pooled connections are authenticated already, so without it a user who
// named a shared smarthost's host and username, with any password, would
// send through the operator's account; and one user's wrong settings
// would back off everyone using that server.
func connKey(u *route.Upstream) string {
	return u.Addr() + "|" + u.TLSMode + "|" + u.Username + "|" + u.Owner
}

// dialer is the dialer for u: for a host a sender chose, one that connects
// only to public addresses, checked on the address dialed, whatever the
// host's name resolves to now.
func dialer(u *route.Upstream, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if u.PublicOnly {
		d.Control = netutil.PublicOnlyControl
	}
	return d
}

// ErrNoTLS and ErrNoAuth make delivery fail closed: with credentials
// configured, mail never goes out in the clear or unauthenticated.
var (
	ErrNoTLS  = errors.New("upstream does not offer STARTTLS; refusing to send credentials and mail in the clear")
	ErrNoAuth = errors.New("upstream offers no AUTH mechanism we support (PLAIN, LOGIN); refusing to send unauthenticated")
)

// Dial connects to u, secures the connection as configured and
// authenticates, returning a client ready for MAIL. connectTimeout bounds
// everything up to and including AUTH, so a dead or stuck upstream cannot
// stall a worker for long.
func Dial(u *route.Upstream, localName string, connectTimeout, commandTimeout time.Duration) (*smtp.Client, error) {
	c, _, err := dial(u, localName, connectTimeout, commandTimeout)
	return c, err
}

// dial is Dial that also returns the underlying connection, on which
// delivery sets the deadline for writing a message body (go-smtp sets none).
func dial(u *route.Upstream, localName string, connectTimeout, commandTimeout time.Duration) (*smtp.Client, net.Conn, error) {
	raw, err := dialer(u, connectTimeout).Dial("tcp", u.Addr())
	if err != nil {
		return nil, nil, err
	}
	// go-smtp sets a fresh deadline of its own for every command; clamping
	// them keeps the whole setup (greeting, EHLO, TLS, AUTH) within
	// connectTimeout, so an upstream that accepts but never greets cannot
	// hold a worker for the five minutes RFC 5321 allows per command.
	conn := &clampedConn{Conn: raw, limit: time.Now().Add(connectTimeout)}
	conn.SetDeadline(time.Time{})
	tlsConfig := &tls.Config{ServerName: u.Host, RootCAs: u.RootCAs, MinVersion: tls.VersionTLS12}

	var c *smtp.Client
	switch u.TLSMode {
	case "implicit":
		tc := tls.Client(conn, tlsConfig)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, nil, err
		}
		c = smtp.NewClient(tc)
	case "starttls":
		tc, err := startTLS(conn, localName, tlsConfig)
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		c = smtp.NewClient(&greetedConn{Conn: tc})
	case "none":
		c = smtp.NewClient(conn)
	default:
		conn.Close()
		return nil, nil, fmt.Errorf("unknown TLS mode %q", u.TLSMode)
	}
	c.CommandTimeout = commandTimeout
	c.SubmissionTimeout = commandTimeout
	if err := c.Hello(localName); err != nil {
		c.Close()
		return nil, nil, err
	}
	if u.Username != "" {
		if err := authenticate(c, u); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	conn.unclamp()
	return c, conn, nil
}

// clampedConn caps every deadline set on it at limit until unclamp is called.
type clampedConn struct {
	net.Conn
	mu    sync.Mutex
	limit time.Time
}

func (c *clampedConn) clamp(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.limit.IsZero() && (t.IsZero() || t.After(c.limit)) {
		return c.limit
	}
	return t
}

func (c *clampedConn) unclamp() {
	c.mu.Lock()
	c.limit = time.Time{}
	c.mu.Unlock()
}

func (c *clampedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *clampedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *clampedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

func authenticate(c *smtp.Client, u *route.Upstream) error {
	switch {
	case c.SupportsAuth(sasl.Plain):
		return c.Auth(sasl.NewPlainClient("", u.Username, u.Password))
	case c.SupportsAuth(sasl.Login):
		// Office 365 and some older servers offer only LOGIN.
		return c.Auth(sasl.NewLoginClient(u.Username, u.Password))
	}
	return ErrNoAuth
}

// startTLS speaks the clear-text part of a STARTTLS session itself: go-smtp's
// NewClientStartTLS would introduce us as "localhost" before TLS, which
// upstreams that check the EHLO name may refuse. It returns the connection
// after a verified TLS handshake; a missing STARTTLS is ErrNoTLS.
func startTLS(conn net.Conn, localName string, cfg *tls.Config) (*tls.Conn, error) {
	// Not closed: closing it would close conn, which the caller owns.
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, err
	}
	exts, err := command(tp, 250, "EHLO %s", localName)
	if err != nil {
		return nil, err
	}
	if !hasExt(exts, "STARTTLS") {
		return nil, ErrNoTLS
	}
	if _, err := command(tp, 220, "STARTTLS"); err != nil {
		return nil, err
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc, nil
}

func command(tp *textproto.Conn, expect int, format string, args ...any) (string, error) {
	id, err := tp.Cmd(format, args...)
	if err != nil {
		return "", err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	_, msg, err := tp.ReadResponse(expect)
	return msg, err
}

// greetedConn hands go-smtp's client the greeting it expects at the start
// of a session: after STARTTLS the server sends none, and the real one was
// read in clear text by startTLS.
type greetedConn struct {
	net.Conn
	greeted bool
	pending []byte
}

func (c *greetedConn) Read(b []byte) (int, error) {
	if !c.greeted {
		c.greeted = true
		c.pending = []byte("220 TLS established\r\n")
	}
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
