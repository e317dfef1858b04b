package auth

import (
	"net"
	"sync"
	"time"
)

// Throttle slows password guessing without handing strangers a way to
// lock a user out. The relay's SMTP AUTH and the web interface's sign-in
// page use it alike (each with its own Throttle). A login name is often
// public (it is an e-mail address), so failures are charged to where they
// come from:
//
//   - a source (an IPv4 address, or the /64 of an IPv6 address, since one
//     host usually holds a whole /64) and login together: after
//     MaxFailures failures within Window, that login is refused from that
//     source for Lockout (SMTP AUTH answers 421 4.7.0). A misconfigured app locks only
//     itself, not the other logins behind the same address.
//   - a source: after sourceFactor × MaxFailures failures within Window,
//     every attempt from it is refused for Lockout, so that one source cannot
//     try a few passwords on each of many logins.
//   - a login, across sources: never refused. Once MaxFailures failures
//     within Window came from anywhere, every attempt for it waits before it
//     is verified: firstLoginDelay, doubling with each further failure, at
//     most maxLoginDelay. Guessing from many sources is slowed; the user,
//     whose password is right, still gets in.
//
// A correct password is never counted as a failure.
type Throttle struct {
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
	Now         func() time.Time
	// Sleep waits out a login's delay; nil means time.Sleep. Tests record
	// the delays instead of waiting.
	Sleep func(time.Duration)

	mu    sync.Mutex
	state map[string]*failures
}

const (
	// sourceFactor × MaxFailures failures refuse a whole source. Higher than
	// the per-login limit because a source is often several clients (apps
	// on one server, an office behind NAT), each with its own login.
	sourceFactor = 4
	// The delay for a login under attack: 1s, 2s, 4s, 8s, then 10s.
	firstLoginDelay = time.Second
	maxLoginDelay   = 10 * time.Second
	// loginDelaySteps failures past MaxFailures reach maxLoginDelay; the
	// per-login record keeps no more than that.
	loginDelaySteps = 4
)

type failures struct {
	times  []time.Time // recent failures, oldest first, bounded
	locked time.Time   // refused until then
}

// SourceOf names the source an address's failures are charged to: the
// address itself for IPv4, its /64 for IPv6, where one host (or one
// customer of a hosting provider) is normally given a whole /64 and could
// otherwise dodge the limits by changing address at every attempt.
func SourceOf(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	if len(ip) != net.IPv6len {
		return ip.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func sourceKey(source string) string      { return "src:" + source }
func pairKey(source, login string) string { return "src+login:" + source + "\x00" + login }
func loginKey(login string) string        { return "login:" + login }
func (t *Throttle) sourceLimit() int      { return sourceFactor * t.MaxFailures }
func (t *Throttle) loginRecordLen() int   { return t.MaxFailures + loginDelaySteps }

// SourceRefused reports whether every attempt from source is refused now, and
// for how much longer.
func (t *Throttle) SourceRefused(source string) (time.Duration, bool) {
	return t.lockedFor(sourceKey(source))
}

// LoginRefused reports whether login is refused from source now, and for
// how much longer.
func (t *Throttle) LoginRefused(source, login string) (time.Duration, bool) {
	return t.lockedFor(pairKey(source, login))
}

// LoginDelay is how long an attempt for login waits before it is verified:
// zero until the login has MaxFailures recent failures from any source,
// then 1s doubling with each further one up to maxLoginDelay.
func (t *Throttle) LoginDelay(login string) time.Duration {
	if t == nil {
		return 0
	}
	n := t.recent(loginKey(login))
	if n < t.MaxFailures {
		return 0
	}
	steps := min(n-t.MaxFailures, loginDelaySteps)
	return min(firstLoginDelay<<steps, maxLoginDelay)
}

// WaitForLogin sleeps for LoginDelay(login) and returns it. The caller
// holds no lock meanwhile; the callers that can be waiting at once are
// bounded by the listeners' connection limits.
func (t *Throttle) WaitForLogin(login string) time.Duration {
	d := t.LoginDelay(login)
	if d <= 0 {
		return 0
	}
	if t.Sleep != nil {
		t.Sleep(d)
	} else {
		time.Sleep(d)
	}
	return d
}

// Fail charges a failed login to the source, to the source and login
// together, and to the login, and reports which refusals it started.
func (t *Throttle) Fail(source, login string) (sourceLocked, loginLocked bool) {
	if t == nil {
		return false, false
	}
	sourceLocked = t.record(sourceKey(source), t.sourceLimit(), t.sourceLimit())
	loginLocked = t.record(pairKey(source, login), t.MaxFailures, t.MaxFailures)
	t.record(loginKey(login), 0, t.loginRecordLen())
	return sourceLocked, loginLocked
}

// lockedFor reports whether key is locked out now, and for how much longer.
func (t *Throttle) lockedFor(key string) (time.Duration, bool) {
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

// recent counts key's failures within Window.
func (t *Throttle) recent(key string) int {
	cutoff := t.now().Add(-t.Window)
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.state[key]
	if !ok {
		return 0
	}
	n := 0
	for _, at := range f.times {
		if at.After(cutoff) {
			n++
		}
	}
	return n
}

// record adds a failure for key, keeping at most keep of them, and locks
// key once limit are within Window (limit 0: never). It reports whether
// key is now locked.
func (t *Throttle) record(key string, limit, keep int) bool {
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
	if over := len(f.times) - keep; over > 0 {
		f.times = append(f.times[:0], f.times[over:]...)
	}
	if limit > 0 && len(f.times) >= limit {
		f.locked = now.Add(t.Lockout)
		f.times = f.times[:0]
		return true
	}
	return false
}

// prune forgets keys with neither recent failures nor a lockout, so that a
// scan from many addresses cannot grow the map without bound.
func (t *Throttle) prune(now time.Time) {
	cutoff := now.Add(-t.Window)
	for k, f := range t.state {
		if now.After(f.locked) && (len(f.times) == 0 || f.times[len(f.times)-1].Before(cutoff)) {
			delete(t.state, k)
		}
	}
}

func (t *Throttle) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}
