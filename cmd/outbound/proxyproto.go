package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"

	"outbound/config"
)

// proxyHeaderTimeout bounds the wait for a trusted load balancer's PROXY
// header, or submission.read_timeout when that is shorter: a load
// balancer sends the header with the connection's first bytes.
func proxyHeaderTimeout(readTimeout time.Duration) time.Duration {
	return min(readTimeout, 10*time.Second)
}

// withProxyProtocol wraps l, a submission listener's raw TCP listener, so
// that connections from the trusted addresses (submission.
// proxy_protocol_from) must begin with a PROXY protocol header, v1 or v2,
// and carry the client's address it holds as their RemoteAddr: the address
// the connection limits, the AUTH throttle and the Received header see.
// Connections from any other address are served as they come, so a header
// from one reaches the SMTP session as a command and is refused there
// (SMTP's server speaks first: waiting for a header an ordinary client
// never sends would hold up its greeting). With no trusted addresses l is
// returned as it is.
//
// A trusted connection whose header is missing, invalid or not read
// within timeout is closed and logged at info, with the load
// balancer's address. Headers are read on a goroutine per connection, not
// in Accept, so that one slow or silent connection (a load balancer's
// TCP health check) does not hold up the others.
func withProxyProtocol(l net.Listener, from []string, timeout time.Duration, kind string, log *slog.Logger) (net.Listener, error) {
	if len(from) == 0 {
		return l, nil
	}
	trusted := make([]netip.Prefix, 0, len(from))
	for _, a := range from {
		p, err := config.ParsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("submission.proxy_protocol_from: %w", err)
		}
		trusted = append(trusted, p)
	}
	pl := &proxyproto.Listener{
		Listener:          l,
		ConnPolicy:        trustedPolicy(trusted),
		ValidateHeader:    validateProxyHeader,
		ReadHeaderTimeout: timeout,
	}
	hl := &headerListener{Listener: pl, kind: kind, log: log,
		accepted: make(chan acceptResult), closed: make(chan struct{})}
	go hl.acceptLoop()
	return hl, nil
}

// trustedPolicy requires a header from the trusted prefixes and leaves
// every other connection as it is (SKIP: proxyproto hands it over unread).
func trustedPolicy(trusted []netip.Prefix) proxyproto.ConnPolicyFunc {
	return func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		ap, err := netip.ParseAddrPort(o.Upstream.String())
		if err != nil {
			return proxyproto.REJECT, fmt.Errorf("%w: %v", proxyproto.ErrInvalidUpstream, err)
		}
		ip := ap.Addr().Unmap()
		for _, p := range trusted {
			if p.Contains(ip) {
				return proxyproto.REQUIRE, nil
			}
		}
		return proxyproto.SKIP, nil
	}
}

// validateProxyHeader accepts a PROXY header that carries TCP addresses,
// and a LOCAL one (a load balancer's own health check, served with the
// load balancer's address); the relay has no use for UDP or Unix sockets.
func validateProxyHeader(h *proxyproto.Header) error {
	if h.Command.IsLocal() {
		return nil
	}
	if _, _, ok := h.TCPAddrs(); !ok {
		return errors.New("the PROXY header carries no TCP addresses")
	}
	return nil
}

// headerListener hands on the connections of a proxyproto.Listener once
// their header is read: Accept returns them in the order their headers
// arrived.
type headerListener struct {
	net.Listener // the proxyproto.Listener
	kind         string
	log          *slog.Logger

	accepted  chan acceptResult
	closed    chan struct{}
	closeOnce sync.Once
}

type acceptResult struct {
	c   net.Conn
	err error
}

// acceptLoop accepts connections until the listener is closed. An Accept
// error goes to Accept as it is, so that the server's handling of
// temporary errors (too many open files) still applies.
func (l *headerListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if pc, ok := c.(*proxyproto.Conn); ok && err == nil {
			go l.readHeader(pc)
			continue
		}
		if !l.hand(acceptResult{c, err}) || errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// readHeader reads pc's header and hands pc on, or closes it.
func (l *headerListener) readHeader(pc *proxyproto.Conn) {
	proxy := pc.Raw().RemoteAddr().String()
	// An empty read reads and checks the header (within the listener's
	// ReadHeaderTimeout) and nothing after it.
	if _, err := pc.Read(nil); err != nil {
		l.log.Info("submission: connection from a trusted proxy without a valid PROXY header; closed",
			"kind", l.kind, "proxy", proxy, "err", err)
		pc.Close()
		return
	}
	l.log.Debug("submission connection through a proxy", "kind", l.kind, "remote", pc.RemoteAddr().String(), "proxy", proxy)
	l.hand(acceptResult{c: pc})
}

// hand passes r to Accept; once the listener is closed it closes r's
// connection instead and says false.
func (l *headerListener) hand(r acceptResult) bool {
	select {
	case l.accepted <- r:
		return true
	case <-l.closed:
		if r.c != nil {
			r.c.Close()
		}
		return false
	}
}

func (l *headerListener) Accept() (net.Conn, error) {
	select {
	case r := <-l.accepted:
		return r.c, r.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *headerListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
