package relay

import (
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// AuthThrottle slows password guessing to a crawl: after MaxFailures
// failed logins within Window from one client address, or against one
// login name, further AUTH from that address (or for that name) is refused
// with 421 4.7.0 for Lockout. A client that gets its password right is
// never counted.
type AuthThrottle struct {
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
	Now         func() time.Time

	mu    sync.Mutex
	state map[string]*failures
}

type failures struct {
	times  []time.Time // recent failures, oldest first, at most MaxFailures
	locked time.Time   // refused until then
}

// blocked reports whether key is locked out now, and for how much longer.
func (t *AuthThrottle) blocked(key string) (time.Duration, bool) {
	if t == nil {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.state[key]
	if !ok {
		return 0, false
	}
	if left := f.locked.Sub(t.now()); left > 0 {
		return left, true
	}
	return 0, false
}

// fail counts a failed login for key and reports whether key is now locked.
func (t *AuthThrottle) fail(key string) bool {
	if t == nil {
		return false
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == nil {
		t.state = make(map[string]*failures)
	}
	if len(t.state) > 100000 {
		t.prune(now)
	}
	f, ok := t.state[key]
	if !ok {
		f = &failures{}
		t.state[key] = f
	}
	cutoff := now.Add(-t.Window)
	kept := f.times[:0]
	for _, at := range f.times {
		if at.After(cutoff) {
			kept = append(kept, at)
		}
	}
	f.times = append(kept, now)
	if len(f.times) >= t.MaxFailures {
		f.locked = now.Add(t.Lockout)
		f.times = f.times[:0]
		return true
	}
	return false
}

// prune forgets keys with neither recent failures nor a lockout, so that a
// scan from many addresses cannot grow the map without bound.
func (t *AuthThrottle) prune(now time.Time) {
	cutoff := now.Add(-t.Window)
	for k, f := range t.state {
		if now.After(f.locked) && (len(f.times) == 0 || f.times[len(f.times)-1].Before(cutoff)) {
			delete(t.state, k)
		}
	}
}

func (t *AuthThrottle) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func errThrottled(left time.Duration) error {
	return reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many failed logins; AUTH is refused for %s", roundUp(left))
}

func roundUp(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()+0.999))
	}
	return fmt.Sprintf("%dm", int(d.Minutes()+0.999))
}
