// Package testutil holds the real parts tests are built from: a test CA, a
// recording go-smtp upstream, and bbolt files in temporary directories.
package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	bolt "go.etcd.io/bbolt"
)

// OpenDB opens a bbolt file in t.TempDir(), closed at cleanup.
func OpenDB(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "test.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.MaxBatchDelay = time.Millisecond
	t.Cleanup(func() { db.Close() })
	return db
}

// CA is a throwaway certificate authority for tests.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// Pool trusts only this CA.
	Pool *x509.CertPool
	// PEM is the CA certificate, for clients given a CA file.
	PEM []byte
}

// NewCA creates a CA.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "outbound test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, Pool: pool, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Issue returns a server certificate for the given names (DNS names or IPs).
func (ca *CA) Issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.IssuePEM(t, names...)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// IssuePEM is Issue in PEM form, for writing to files.
func (ca *CA) IssuePEM(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// WriteFile writes data to name in dir and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Received is one message an Upstream accepted.
type Received struct {
	From string
	To   []string
	Data []byte
	// User is the AUTH login the client used ("" without AUTH).
	User string
}

// UpstreamOptions configures a recording upstream.
type UpstreamOptions struct {
	// TLS, when set, is offered as STARTTLS, or used for the whole
	// connection when Implicit is set.
	TLS      *tls.Config
	Implicit bool
	// Username and Password, when set, are required (AUTH PLAIN) before MAIL.
	Username, Password string
	// Rcpt, when set, may refuse a recipient with the error it returns.
	Rcpt func(to string) error
	// Data, when set, may refuse the message with the error it returns
	// (after reading it).
	Data func(data []byte) error
}

// Upstream is a real go-smtp server on 127.0.0.1 that records what it
// receives: the smarthost of tests.
type Upstream struct {
	Host string
	Port int
	opts UpstreamOptions
	srv  *smtp.Server
	l    net.Listener

	mu       sync.Mutex
	received []Received
	conns    int
	arrived  chan struct{}
}

// StartUpstream starts an upstream, stopped at cleanup.
func StartUpstream(t testing.TB, opts UpstreamOptions) *Upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveUpstream(t, l, opts)
}

// StartUpstreamAt starts an upstream on a given address (to bring a
// "down" upstream back up on the port the relay was configured with).
func StartUpstreamAt(t testing.TB, addr string, opts UpstreamOptions) *Upstream {
	t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	return serveUpstream(t, l, opts)
}

func serveUpstream(t testing.TB, l net.Listener, opts UpstreamOptions) *Upstream {
	u := &Upstream{opts: opts, l: l, arrived: make(chan struct{}, 1<<16)}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	u.Host = host
	u.Port, _ = strconv.Atoi(port)
	u.srv = smtp.NewServer(u)
	u.srv.Domain = "upstream.test"
	u.srv.TLSConfig = opts.TLS
	u.srv.EnableSMTPUTF8 = true
	u.srv.AllowInsecureAuth = opts.TLS == nil
	u.srv.ErrorLog = discardLogger{}
	if opts.Implicit {
		l = tls.NewListener(l, opts.TLS)
	}
	go u.srv.Serve(l)
	t.Cleanup(func() { u.Close() })
	return u
}

// Addr is host:port.
func (u *Upstream) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// Close stops the upstream.
func (u *Upstream) Close() { u.srv.Close() }

// Messages returns what was received so far.
func (u *Upstream) Messages() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.received...)
}

// Connections counts sessions opened so far.
func (u *Upstream) Connections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// Wait blocks until at least n messages arrived, failing the test after
// timeout.
func (u *Upstream) Wait(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if msgs := u.Messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-u.arrived:
		case <-deadline:
			t.Fatalf("upstream got %d messages, want %d within %s", len(u.Messages()), n, timeout)
		}
	}
}

// NewSession implements smtp.Backend.
func (u *Upstream) NewSession(c *smtp.Conn) (smtp.Session, error) {
	u.mu.Lock()
	u.conns++
	u.mu.Unlock()
	return &upstreamSession{u: u}, nil
}

type upstreamSession struct {
	u    *Upstream
	user string
	msg  Received
}

func (s *upstreamSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *upstreamSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.u.opts.Username || password != s.u.opts.Password {
			return smtp.ErrAuthFailed
		}
		s.user = username
		return nil
	}), nil
}

func (s *upstreamSession) Mail(from string, opts *smtp.MailOptions) error {
	if s.u.opts.Username != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.msg = Received{From: from, User: s.user}
	return nil
}

func (s *upstreamSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.u.opts.Rcpt != nil {
		if err := s.u.opts.Rcpt(to); err != nil {
			return err
		}
	}
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *upstreamSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.u.opts.Data != nil {
		if err := s.u.opts.Data(data); err != nil {
			return err
		}
	}
	s.msg.Data = data
	s.u.mu.Lock()
	s.u.received = append(s.u.received, s.msg)
	s.u.mu.Unlock()
	select {
	case s.u.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (s *upstreamSession) Reset()        { s.msg = Received{} }
func (s *upstreamSession) Logout() error { return nil }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// ErrTemporary is a 451 an Upstream option can return.
var ErrTemporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}

// FreePort returns a loopback address nobody listens on (yet), for a
// server a test starts later (often a subprocess). The port is never one
// this process handed out before, and it is taken below the kernel's
// ephemeral range, so no listener on port 0 and no outgoing connection
// (in this process or another) can be given it in the meantime.
func FreePort(t testing.TB) string {
	t.Helper()
	freePorts.Lock()
	defer freePorts.Unlock()
	if freePorts.given == nil {
		freePorts.given = map[int]bool{}
	}
	low := ephemeralLow()
	for range 1000 {
		port := firstTestPort + mathrand.IntN(low-firstTestPort)
		if freePorts.given[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		freePorts.given[port] = true
		return l.Addr().String()
	}
	t.Fatal("FreePort: no free loopback port below the ephemeral range")
	return ""
}

var freePorts struct {
	sync.Mutex
	given map[int]bool
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 2048 {
			low = lo
		}
	}
	return max(low, firstTestPort+1000)
}

// firstTestPort keeps FreePort above the ports that services on a
// developer's machine usually take.
const firstTestPort = 10000
