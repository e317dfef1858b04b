package delivery

import (
	"net"
	"sync"
)

// inFlight holds the upstream connections transactions are running on, so
// that a stopping Deliverer can cut them off: an upstream that stops
// answering in the middle of a transaction would otherwise hold the
// shutdown for up to the command timeout (RFC 5321's five minutes per
// command by default).
type inFlight struct {
	mu      sync.Mutex
	conns   map[net.Conn]bool
	aborted bool
}

// begin registers c for the duration of a transaction; after abort it
// closes c at once, so the transaction fails on its first command.
func (f *inFlight) begin(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.aborted {
		c.Close()
		return
	}
	if f.conns == nil {
		f.conns = make(map[net.Conn]bool)
	}
	f.conns[c] = true
}

// end forgets c and reports whether abort cut its transaction off.
func (f *inFlight) end(c net.Conn) (aborted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
	return f.aborted
}

// abort closes every registered connection and every one begun later, and
// returns how many were open.
func (f *inFlight) abort() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborted = true
	for c := range f.conns {
		c.Close()
	}
	return len(f.conns)
}
