package delivery

import (
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// pool keeps authenticated upstream connections for reuse and bounds how
// many are open to each upstream at once. A new TLS + AUTH connection costs
// more than sending a typical message over an existing one.
type pool struct {
	maxPerUpstream int
	idleTimeout    time.Duration

	mu    sync.Mutex
	slots map[string]chan struct{}
	idle  map[string][]idleConn
}

type idleConn struct {
	c     *upstreamConn
	since time.Time
}

// upstreamConn is an authenticated session with an upstream and the
// network connection under it.
type upstreamConn struct {
	*smtp.Client
	raw net.Conn
}

// discard ends a session politely, without making the caller wait.
func (c *upstreamConn) discard() {
	go func() {
		c.Quit()
		c.Close()
	}()
}

func newPool(maxPerUpstream int, idleTimeout time.Duration) *pool {
	return &pool{
		maxPerUpstream: maxPerUpstream,
		idleTimeout:    idleTimeout,
		slots:          make(map[string]chan struct{}),
		idle:           make(map[string][]idleConn),
	}
}

// acquire waits for a connection slot to the upstream with this key and
// returns an idle connection if one is fresh enough (or nil). The caller
// must call release exactly once.
func (p *pool) acquire(key string, done <-chan struct{}) (*upstreamConn, bool) {
	p.mu.Lock()
	sem, ok := p.slots[key]
	if !ok {
		sem = make(chan struct{}, p.maxPerUpstream)
		p.slots[key] = sem
	}
	p.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-done:
		return nil, false
	}
	// Both may have been ready at once; once delivery is stopping, no new
	// attempt starts.
	select {
	case <-done:
		<-sem
		return nil, false
	default:
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		list := p.idle[key]
		if len(list) == 0 {
			return nil, true
		}
		ic := list[len(list)-1]
		p.idle[key] = list[:len(list)-1]
		if time.Since(ic.since) < p.idleTimeout {
			return ic.c, true
		}
		ic.c.discard()
	}
}

// release gives the slot back, keeping c for reuse when it is not nil.
func (p *pool) release(key string, c *upstreamConn) {
	p.mu.Lock()
	if c != nil {
		p.idle[key] = append(p.idle[key], idleConn{c: c, since: time.Now()})
	}
	sem := p.slots[key]
	p.mu.Unlock()
	<-sem
}

// closeIdle closes connections idle longer than the timeout (or all of them
// when all is set).
func (p *pool) closeIdle(all bool) {
	p.mu.Lock()
	var stale []*upstreamConn
	for key, list := range p.idle {
		kept := list[:0]
		for _, ic := range list {
			if all || time.Since(ic.since) >= p.idleTimeout {
				stale = append(stale, ic.c)
			} else {
				kept = append(kept, ic)
			}
		}
		p.idle[key] = kept
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.Quit()
		c.Close()
	}
}
