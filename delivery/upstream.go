package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Upstream is a smarthost as delivery needs it: where, how to secure the
// connection, and the credentials to present.
type Upstream struct {
	// Name identifies the upstream in logs and the attempt history
	// ("default" for the default route).
	Name     string
	Host     string
	Port     int
	TLSMode  string // "implicit", "starttls" or "none" (loopback only; checked by config)
	Username string
	// Password is the AUTH secret. It never appears in logs or errors.
	Password string
	// RootCAs verifies the upstream's certificate; nil means the system roots.
	RootCAs *x509.CertPool
}

func (u *Upstream) addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// key identifies connections that may be shared: same server, same login.
func (u *Upstream) key() string { return u.addr() + "|" + u.TLSMode + "|" + u.Username }

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
func Dial(u *Upstream, localName string, connectTimeout, commandTimeout time.Duration) (*smtp.Client, error) {
	raw, err := (&net.Dialer{Timeout: connectTimeout}).Dial("tcp", u.addr())
	if err != nil {
		return nil, err
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
			return nil, err
		}
		c = smtp.NewClient(tc)
	case "starttls":
		c, err = smtp.NewClientStartTLS(conn, tlsConfig)
		if err != nil {
			conn.Close()
			if err.Error() == "smtp: server doesn't support STARTTLS" {
				return nil, ErrNoTLS
			}
			return nil, err
		}
	case "none":
		c = smtp.NewClient(conn)
	default:
		conn.Close()
		return nil, fmt.Errorf("unknown TLS mode %q", u.TLSMode)
	}
	c.CommandTimeout = commandTimeout
	c.SubmissionTimeout = commandTimeout
	if err := c.Hello(localName); err != nil {
		c.Close()
		return nil, err
	}
	if u.Username != "" {
		if err := authenticate(c, u); err != nil {
			c.Close()
			return nil, err
		}
	}
	conn.unclamp()
	return c, nil
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

func authenticate(c *smtp.Client, u *Upstream) error {
	switch {
	case c.SupportsAuth(sasl.Plain):
		return c.Auth(sasl.NewPlainClient("", u.Username, u.Password))
	case c.SupportsAuth(sasl.Login):
		// Office 365 and some older servers offer only LOGIN.
		return c.Auth(sasl.NewLoginClient(u.Username, u.Password))
	}
	return ErrNoAuth
}
