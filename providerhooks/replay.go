package providerhooks

import (
	"sync"
	"time"
)

// Replay remembers tokens (signatures, Mailgun tokens, SNS message ids,
// event ids) for a window, so a request or event seen once is refused or
// skipped when it comes again. Memory is bounded: past max entries the
// oldest is forgotten first. It is in memory only: a replay within the
// window after a restart is not caught, which MaxAge keeps to 5 minutes for
// signed requests.
type Replay struct {
	window time.Duration
	max    int

	mu    sync.Mutex
	seen  map[string]time.Time
	order []entry // by time first seen; the oldest at the front
}

type entry struct {
	token string
	at    time.Time
}

// NewReplay remembers tokens for window, at most max of them.
func NewReplay(window time.Duration, max int) *Replay {
	return &Replay{window: window, max: max, seen: make(map[string]time.Time)}
}

// Seen reports whether token was seen within the window before now, and
// remembers it from now on when it was not.
func (r *Replay) Seen(token string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire(now)
	if at, ok := r.seen[token]; ok && now.Sub(at) < r.window {
		return true
	}
	for len(r.order) >= r.max && len(r.order) > 0 {
		r.drop(r.order[0])
		r.order = r.order[1:]
	}
	r.seen[token] = now
	r.order = append(r.order, entry{token, now})
	return false
}

// Forget drops token, so it is accepted again: the Handler forgets an
// event's id when recording the event failed, so that the provider's retry
// records it.
func (r *Replay) Forget(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, token)
}

// Claim is a replay token one request took (Seen reported it new): the
// Verifier returns it in Verified, and the Handler releases it when the
// request's events could not be stored, so that the provider's retry of
// that request is taken instead of refused as a replay. The zero Claim
// holds nothing (Postmark's requests carry no token).
type Claim struct {
	replay *Replay
	token  string
	at     time.Time
}

// claim is the Claim of token, which Seen took at now.
func (r *Replay) claim(token string, now time.Time) Claim {
	return Claim{replay: r, token: token, at: now}
}

// Release gives the token back, so a request with it is accepted again. It
// forgets only this claim: a token that expired and was taken since by
// another request stays that request's.
func (c Claim) Release() {
	if c.replay == nil {
		return
	}
	c.replay.mu.Lock()
	defer c.replay.mu.Unlock()
	if at, ok := c.replay.seen[c.token]; ok && at.Equal(c.at) {
		delete(c.replay.seen, c.token)
	}
}

// expire drops the entries older than the window.
func (r *Replay) expire(now time.Time) {
	i := 0
	for i < len(r.order) && now.Sub(r.order[i].at) >= r.window {
		r.drop(r.order[i])
		i++
	}
	r.order = r.order[i:]
}

// drop forgets e's token unless it was seen again since (Forget, then Seen).
func (r *Replay) drop(e entry) {
	if at, ok := r.seen[e.token]; ok && at.Equal(e.at) {
		delete(r.seen, e.token)
	}
}
