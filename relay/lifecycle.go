package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// This file holds what the relay does with connections as a whole: the
// idle timeout, and an orderly shutdown that ends every session before the
// store behind the relay is closed.
//
// go-smtp sets a connection's read deadline once per command line, so a
// message whose DATA takes longer than read_timeout to arrive fails even
// while bytes keep coming; its Shutdown waits for connections to end by
// themselves (idle ones do so only at their read timeout), and Close after
// Shutdown does nothing. Serve wraps each connection so that every read
// gets a fresh deadline (read_timeout is the longest silence, as the
// documentation says), and knows which connections wait for a command,
// so that Shutdown can end those at once and let the others finish.

// shutdownPoll is how often Shutdown looks for sessions that went idle.
const shutdownPoll = 20 * time.Millisecond

// connTracker knows the relay's open connections.
type connTracker struct {
	closing atomic.Bool

	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	servers []*smtp.Server
	changed chan struct{} // closed and replaced whenever a connection ends
}

func newConnTracker() *connTracker {
	return &connTracker{conns: make(map[*trackedConn]struct{}), changed: make(chan struct{})}
}

// trackedConn is a raw TCP connection (below TLS) of a submission listener.
type trackedConn struct {
	net.Conn
	t           *connTracker
	idleTimeout time.Duration

	// reading is set while a Read waits for the client.
	reading atomic.Bool

	mu sync.Mutex
	// busy counts session calls in progress (a command being handled:
	// DATA being received and queued, an SPF lookup, a password check).
	busy int
	// session is the SMTP session on this connection, once EHLO made one.
	session *session
	// ended: no more session calls may start; closed: Close was called.
	ended, closed bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.idleTimeout > 0 {
		// Every read gets the whole timeout: a client that keeps sending
		// is never cut off, one that falls silent is after read_timeout.
		c.Conn.SetReadDeadline(time.Now().Add(c.idleTimeout))
	}
	c.reading.Store(true)
	n, err := c.Conn.Read(p)
	c.reading.Store(false)
	return n, err
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.t.forgetIfDone(c)
	return err
}

type trackedListener struct {
	net.Listener
	t    *connTracker
	idle time.Duration
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t, idleTimeout: l.idle}
	l.t.mu.Lock()
	l.t.conns[tc] = struct{}{}
	l.t.mu.Unlock()
	if l.t.closing.Load() {
		tc.Close()
	}
	return tc, nil
}

// forgetIfDone drops a connection that is closed and runs no session call.
func (t *connTracker) forgetIfDone(c *trackedConn) {
	c.mu.Lock()
	done := c.closed && c.busy == 0
	c.mu.Unlock()
	if !done {
		return
	}
	t.mu.Lock()
	if _, ok := t.conns[c]; ok {
		delete(t.conns, c)
		close(t.changed)
		t.changed = make(chan struct{})
	}
	t.mu.Unlock()
}

// Serve accepts submission connections on l, a plain TCP listener (wrap it
// with LimitConnections first to limit connections). With implicitTLS the
// TLS handshake comes first; otherwise the listener offers STARTTLS. It
// returns when Shutdown has closed the listener.
func (b *Backend) Serve(l net.Listener, tlsConfig *tls.Config, implicitTLS bool) error {
	srv := b.NewServer(tlsConfig, implicitTLS)
	t := b.conns
	t.mu.Lock()
	if t.closing.Load() {
		t.mu.Unlock()
		l.Close()
		return smtp.ErrServerClosed
	}
	t.servers = append(t.servers, srv)
	t.mu.Unlock()
	l = &trackedListener{Listener: l, t: t, idle: b.opts.ReadTimeout}
	if implicitTLS {
		l = tls.NewListener(l, tlsConfig)
	}
	err := srv.Serve(l)
	if errors.Is(err, net.ErrClosed) {
		err = smtp.ErrServerClosed
	}
	return err
}

// Shutdown stops the listeners of Serve and ends every session; call it
// before closing the stores the relay writes to. A session waiting for a
// command gets "421 4.3.2" and is closed at once; one in the middle of a
// command (a message being received or queued) finishes it, gets its reply,
// and is closed when it next waits. When ctx ends first, the connections
// still open are closed; Shutdown still waits for the session calls in
// progress to return, so that none touches a closed store. It returns
// ctx's error in that case. Those sessions get "421 4.3.2" too, before
// their connection closes.
func (b *Backend) Shutdown(ctx context.Context) error {
	t := b.conns
	t.closing.Store(true)
	t.mu.Lock()
	servers := t.servers
	t.mu.Unlock()
	for _, srv := range servers {
		// Closes the listeners; its wait for the connections is ours below.
		go srv.Shutdown(context.Background())
	}

	tick := time.NewTicker(shutdownPoll)
	defer tick.Stop()
	var ctxErr error
	for {
		t.mu.Lock()
		open := make([]*trackedConn, 0, len(t.conns))
		for c := range t.conns {
			open = append(open, c)
		}
		changed := t.changed
		t.mu.Unlock()
		if len(open) == 0 {
			return ctxErr
		}
		for _, c := range open {
			if ctxErr != nil {
				// Past the deadline a session still in a command is cut
				// off, but with the reply that says it may retry, not a
				// bare close; each on its own goroutine, as a write may
				// have to wait (endNow bounds it).
				go c.endNow(errShuttingDown)
			} else if c.idle() {
				c.end(errShuttingDown)
			}
		}
		select {
		case <-ctx.Done():
			if ctxErr == nil {
				ctxErr = ctx.Err()
			}
		case <-changed:
		case <-tick.C:
		}
	}
}

// idle reports whether the connection waits for the client's next command.
func (c *trackedConn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy == 0 && c.reading.Load()
}

// end closes the connection, first telling the client why when a session
// is open on it and no session call is in progress. With final nil it
// just closes.
func (c *trackedConn) end(final *smtp.SMTPError) {
	c.mu.Lock()
	s, busy, already := c.session, c.busy, c.ended
	c.ended = true
	c.mu.Unlock()
	if final != nil && s != nil && busy == 0 && !already {
		s.closeWith(final)
	}
	c.Close()
}

// endNow is end for a session that may be in the middle of a command (the
// shutdown deadline passed): the reply is written anyway, before the close
// that ends the command. A reply go-smtp writes at the same moment may come
// before or after it; either way the client learns to retry. The write
// waits at most endNowWait: a client that reads nothing (and so holds a
// write of go-smtp's, and the TLS connection's write lock, in place) must
// not hold up the shutdown; the deadline set here releases that write too.
func (c *trackedConn) endNow(final *smtp.SMTPError) {
	c.mu.Lock()
	s, already := c.session, c.ended
	c.ended = true
	c.mu.Unlock()
	if s != nil && !already {
		conn := s.conn.Conn()
		conn.SetWriteDeadline(time.Now().Add(endNowWait))
		io.WriteString(conn, replyLine(final))
	}
	c.Close()
}

// endNowWait bounds endNow's write of its reply.
const endNowWait = time.Second

// enter marks a session call in progress. Once shutdown has begun, no new
// transaction or login starts (begin: MAIL, AUTH): the call fails with
// 421 4.3.2 and the connection ends; the commands that continue one
// (RCPT, DATA, the AUTH exchange) go on, so a message on its way in is
// still accepted.
func (c *trackedConn) enter(begin bool) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if c.ended || c.closed || (begin && c.t.closing.Load()) {
		c.mu.Unlock()
		c.end(errShuttingDown)
		return errShuttingDown
	}
	c.busy++
	c.mu.Unlock()
	return nil
}

func (c *trackedConn) leave() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.busy--
	c.mu.Unlock()
	c.t.forgetIfDone(c)
}

// attach records the session go-smtp made on this connection (at EHLO).
func (c *trackedConn) attach(s *session) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.session = s
	c.mu.Unlock()
}

func (c *trackedConn) detach(s *session) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.session == s {
		c.session = nil
	}
	c.mu.Unlock()
}

// trackedConnOf returns the tracked connection under an SMTP connection, or nil
// when the server was not started by Serve.
func trackedConnOf(c *smtp.Conn) *trackedConn {
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	raw, _ := nc.(*trackedConn)
	return raw
}

// guardedSession marks each call of go-smtp into a session as in progress,
// so that Shutdown lets it finish and refuses the ones after it.
type guardedSession struct{ *session }

var _ smtp.AuthSession = guardedSession{}

func (g guardedSession) Auth(mech string) (sasl.Server, error) {
	if err := g.raw.enter(true); err != nil {
		return nil, err
	}
	defer g.raw.leave()
	srv, err := g.session.Auth(mech)
	if srv != nil {
		srv = guardedSASL{srv, g.raw}
	}
	return srv, err
}

func (g guardedSession) Mail(from string, opts *smtp.MailOptions) error {
	if err := g.raw.enter(true); err != nil {
		return err
	}
	defer g.raw.leave()
	return g.session.Mail(from, opts)
}

func (g guardedSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	if err := g.raw.enter(false); err != nil {
		return err
	}
	defer g.raw.leave()
	return g.session.Rcpt(to, opts)
}

func (g guardedSession) Data(r io.Reader) error {
	if err := g.raw.enter(false); err != nil {
		return err
	}
	defer g.raw.leave()
	return g.session.Data(r)
}

func (g guardedSession) Logout() error {
	g.raw.detach(g.session)
	return g.session.Logout()
}

// guardedSASL guards the password check, which runs when go-smtp hands the
// client's response to the mechanism, after Auth has returned.
type guardedSASL struct {
	sasl.Server
	raw *trackedConn
}

func (g guardedSASL) Next(response []byte) ([]byte, bool, error) {
	if err := g.raw.enter(false); err != nil {
		return nil, true, err
	}
	defer g.raw.leave()
	return g.Server.Next(response)
}
