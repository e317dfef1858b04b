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
