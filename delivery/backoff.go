package delivery

import (
	"sort"
	"sync"
	"time"
)

// backoffs tracks upstreams that failed as a whole (unreachable, 421,
// rate limiting). While one is backed off its messages wait instead of
// each retrying on its own: no retry storm against a struggling upstream,
// and no attempts burned while it is known to be down.
type backoffs struct {
	delay func(failures int) time.Duration

	mu    sync.Mutex
	state map[string]*upstreamState
}

type upstreamState struct {
	// name is the upstream's name (route.Upstream.Name), for operators.
	name     string
	failures int
	until    time.Time
	// reason is the failure that backed it off last.
	reason string
}

func newBackoffs(delay func(int) time.Duration) *backoffs {
	return &backoffs{delay: delay, state: make(map[string]*upstreamState)}
}

// defaultUpstreamBackoff is 30s, 1m, 2m, 4m, 8m, then 15m while the
// upstream keeps failing.
func defaultUpstreamBackoff(failures int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < failures && d < 15*time.Minute; i++ {
		d *= 2
	}
	return min(d, 15*time.Minute)
}

// downUntil reports whether the upstream is backed off at now, and until when.
func (b *backoffs) downUntil(key string, now time.Time) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.state[key]
	if !ok || !now.Before(s.until) {
		return time.Time{}, false
	}
	return s.until, true
}

// failed records a whole-upstream failure of the upstream called name
// (for operators), caused by reason, and returns when the upstream may be
// tried again.
func (b *backoffs) failed(key, name, reason string, now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.state[key]
	if !ok {
		s = &upstreamState{}
		b.state[key] = s
	}
	s.failures++
	s.until = now.Add(b.delay(s.failures))
	s.name, s.reason = name, reason
	return s.until
}

// succeeded clears the upstream's failures.
func (b *backoffs) succeeded(key string) {
	b.mu.Lock()
	delete(b.state, key)
	b.mu.Unlock()
}

// BackedOff is an upstream that delivery is holding its messages for,
// as operators see it (the admin API's queue stats, the Overview).
type BackedOff struct {
	// Upstream is the upstream's name: "default" or a smarthost's.
	Upstream string `json:"upstream"`
	// Until is when it is tried again.
	Until time.Time `json:"until"`
	// Failures counts its failures in a row.
	Failures int `json:"failures"`
	// Reason is its last failure, as logged.
	Reason string `json:"reason"`
}

// BackedOff lists the upstreams backed off now, soonest back first.
func (d *Deliverer) BackedOff() []BackedOff {
	now := d.opts.Now()
	b := d.backoffs
	b.mu.Lock()
	out := []BackedOff{}
	for _, s := range b.state {
		if now.Before(s.until) {
			out = append(out, BackedOff{Upstream: s.name, Until: s.until, Failures: s.failures, Reason: s.reason})
		}
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Until.Before(out[j].Until) })
	return out
}
