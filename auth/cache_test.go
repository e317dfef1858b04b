package auth

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A burst of connections logging in with the same credentials costs one
// bcrypt, and a wrong password sent at the same moment neither shares its
// result nor is let in.
func TestConcurrentLoginsShareOneHash(t *testing.T) {
	s := newStore(t)
	if _, err := s.Add("app@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	slow := s.cache.compare
	var calls atomic.Int32
	s.cache.compare = func(hash, password []byte) error {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond) // keep the first hash in flight while the others arrive
		return slow(hash, password)
	}
	var wg sync.WaitGroup
	var good, bad atomic.Int32
	for i := range 21 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pw := "correct horse"
			if i == 20 {
				pw = "wrong horse"
			}
			if _, err := s.Verify("app@example.com", pw); err == nil {
				good.Add(1)
			} else {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if good.Load() != 20 || bad.Load() != 1 {
		t.Fatalf("%d logins accepted and %d refused; want 20 and 1", good.Load(), bad.Load())
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d bcrypt comparisons for 20 identical logins and 1 wrong one; want 2", n)
	}
}

// Each bcrypt takes a whole CPU for ~65 ms: a flood of AUTH attempts with
// different passwords (or unknown logins, which cost a dummy bcrypt) must
// queue for a few slots instead of running all at once and starving the
// sessions that are sending mail.
func TestBcryptRunsInAFewSlotsAtOnce(t *testing.T) {
	s := newStore(t)
	if _, err := s.Add("app@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	const slots, callers = 2, 8
	s.cache.slots = make(chan struct{}, slots)
	slow := s.cache.compare
	entered := make(chan struct{}, callers)
	release := make(chan struct{})
	var inFlight, most atomic.Int32
	s.cache.compare = func(hash, password []byte) error {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		entered <- struct{}{}
		<-release
		inFlight.Add(-1)
		return slow(hash, password)
	}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "app@example.com"
			if i%2 == 1 {
				name = "nobody@example.com" // the dummy bcrypt takes a slot too
			}
			// Different passwords, so that no two share one bcrypt.
			s.Verify(name, "guess number "+string(rune('a'+i)))
		}()
	}
	for range slots {
		<-entered
	}
	// The slots are full and nothing is released yet: with no cap, the
	// other callers would now be inside compare as well.
	select {
	case <-entered:
		t.Fatalf("a bcrypt started while %d were running", slots)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	if m := most.Load(); m > slots {
		t.Fatalf("%d bcrypt comparisons ran at once; the cap is %d", m, slots)
	}
}
