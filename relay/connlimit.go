package relay

import (
	"net"
	"sync"
)

// LimitConnections wraps a listener so that at most total connections are
// open at once, and at most perIP from one client address; a connection
// over either limit is closed at once (on a plain-text listener after a
// "421 4.7.0" line, so that the client knows why). 0 means no limit.
// Wrap the raw TCP listener, before any TLS.
func LimitConnections(l net.Listener, total, perIP int, sayWhy bool) net.Listener {
	return &limitedListener{Listener: l, total: total, perIP: perIP, sayWhy: sayWhy, byIP: make(map[string]int)}
}

type limitedListener struct {
	net.Listener
	total, perIP int
	sayWhy       bool

	mu   sync.Mutex
	open int
	byIP map[string]int
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		l.mu.Lock()
		over := (l.total > 0 && l.open >= l.total) || (l.perIP > 0 && l.byIP[ip] >= l.perIP)
		if !over {
			l.open++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if over {
			if l.sayWhy {
				c.Write([]byte(replyLine(errTooManyConnections.se)))
			}
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitedListener) done(ip string) {
	l.mu.Lock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
}

type countedConn struct {
	net.Conn
	l    *limitedListener
	ip   string
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.done(c.ip) })
	return err
}

func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, _ := net.SplitHostPort(a.String())
	return host
}
