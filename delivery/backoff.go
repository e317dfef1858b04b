package delivery

import (
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
	failures int
	until    time.Time
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

// failed records a whole-upstream failure and returns when the upstream
// may be tried again.
func (b *backoffs) failed(key string, now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.state[key]
	if !ok {
		s = &upstreamState{}
		b.state[key] = s
	}
	s.failures++
	s.until = now.Add(b.delay(s.failures))
	return s.until
}

// succeeded clears the upstream's failures.
func (b *backoffs) succeeded(key string) {
	b.mu.Lock()
	delete(b.state, key)
	b.mu.Unlock()
}
