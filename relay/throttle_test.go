package relay

import (
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"outbound/auth"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// dialFrom connects to the implicit-TLS listener from a given loopback
// address (Linux routes all of 127.0.0.0/8 to lo), so that tests can play
// clients at different addresses.
func (h *harness) dialFrom(t *testing.T, ip string) *smtp.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", h.implicitAddr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(tls.Client(conn, h.clientTLS))
	t.Cleanup(func() { c.Close() })
	return c
}

// sleepRecorder stands in for time.Sleep and remembers what was asked.
type sleepRecorder struct {
	mu    sync.Mutex
	slept []time.Duration
}

func (r *sleepRecorder) Sleep(d time.Duration) {
	r.mu.Lock()
	r.slept = append(r.slept, d)
	r.mu.Unlock()
}

func (r *sleepRecorder) last() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.slept) == 0 {
		return 0
	}
	return r.slept[len(r.slept)-1]
}

// The scenario: a stranger's wrong guesses lock the stranger out,
// never the user. Eight wrong AUTHs from 127.0.0.2, then the right
// password from 127.0.0.3 logs in (after a delay, since the login is being
// guessed at).
func TestGuessesFromElsewhereDoNotLockTheUserOut(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	sleeps := &sleepRecorder{}
	h := startRelay(t, func(o *Options) {
		o.Throttle = &auth.Throttle{MaxFailures: 5, Window: 5 * time.Minute, Lockout: 15 * time.Minute, Now: clock.Now, Sleep: sleeps.Sleep}
	})
	for i := 1; i <= 8; i++ {
		err := h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", alice, "guess"))
		if i < 5 {
			wantCode(t, err, 535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed")
		} else {
			wantCode(t, err, 421, smtp.EnhancedCode{4, 7, 0}, "Too many failed logins")
		}
	}
	if err := h.dialFrom(t, "127.0.0.3").Auth(sasl.NewPlainClient("", alice, alicePw)); err != nil {
		t.Fatalf("the right password from another address: %v", err)
	}
	if d := sleeps.last(); d <= 0 {
		t.Fatalf("a login with %d recent failures was not slowed", 5)
	}
	// The guesser stays locked out, even with the right password.
	wantCode(t, h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", alice, alicePw)), 421, smtp.EnhancedCode{4, 7, 0}, "refused for 15m")
}

// Failures for one login from anywhere never refuse it: they delay every
// AUTH for it, more with each failure, up to a cap, and the delay is gone
// once the failures are older than the window.
func TestLoginGuessedFromManySourcesIsSlowedNeverRefused(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	th := &auth.Throttle{MaxFailures: 3, Window: 5 * time.Minute, Lockout: 15 * time.Minute, Now: clock.Now}
	want := []time.Duration{0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if d := th.LoginDelay(alice); d != w {
			t.Fatalf("after %d failures from different sources: delay %v, want %v", i, d, w)
		}
		if _, locked := th.LoginRefused("192.0.2.250", alice); locked {
			t.Fatalf("after %d failures from different sources: refused from a fresh source", i)
		}
		th.Fail("192.0.2."+strconv.Itoa(i+1), alice)
	}
	if d := th.LoginDelay("bob@example.com"); d != 0 {
		t.Fatalf("guesses at alice delay bob by %v", d)
	}
	clock.Advance(6 * time.Minute)
	if d := th.LoginDelay(alice); d != 0 {
		t.Fatalf("delay %v once the failures left the window", d)
	}
}

// A source that fails on many logins is refused altogether after four
// times MaxFailures, so spreading guesses over logins does not help; other
// sources are not affected.
func TestSourceFailingOnManyLoginsIsRefused(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	sleeps := &sleepRecorder{}
	th := &auth.Throttle{MaxFailures: 2, Window: 5 * time.Minute, Lockout: 15 * time.Minute, Now: clock.Now, Sleep: sleeps.Sleep}
	h := startRelay(t, func(o *Options) { o.Throttle = th })
	for i := 1; i <= 4*2; i++ {
		err := h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", "user"+strconv.Itoa(i)+"@example.com", "guess"))
		if i < 8 {
			wantCode(t, err, 535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed")
		} else {
			wantCode(t, err, 421, smtp.EnhancedCode{4, 7, 0}, "Too many failed logins from this address")
		}
	}
	wantCode(t, h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", alice, alicePw)), 421, smtp.EnhancedCode{4, 7, 0}, "from this address; AUTH is refused for 15m")
	if err := h.dialFrom(t, "127.0.0.3").Auth(sasl.NewPlainClient("", alice, alicePw)); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

// One login that keeps failing from an address (an app with an old
// password) is refused from there, but the other logins at that address
// (the other apps on the same server) go on working.
func TestLoginLockedFromASourceLeavesItsOtherLogins(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	sleeps := &sleepRecorder{}
	h := startRelay(t, func(o *Options) {
		o.Throttle = &auth.Throttle{MaxFailures: 3, Window: 5 * time.Minute, Lockout: 15 * time.Minute, Now: clock.Now, Sleep: sleeps.Sleep}
	})
	const bob, bobPw = "bob@example.com", "bob's long password"
	if _, err := h.users.Add(bob, bobPw, nil); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", alice, "old password"))
	}
	wantCode(t, h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", alice, alicePw)), 421, smtp.EnhancedCode{4, 7, 0}, "for this user from this address")
	if err := h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", bob, bobPw)); err != nil {
		t.Fatalf("another login from the same address: %v", err)
	}
}

// A session that waited out a login's delay checks the lockouts again: its
// source may have been locked by its other sessions meanwhile, so that
// many connections opened at once do not all get their guess verified.
func TestLockoutDuringTheDelayIsHonoured(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	th := &auth.Throttle{MaxFailures: 2, Window: 5 * time.Minute, Lockout: 15 * time.Minute, Now: clock.Now}
	th.Fail("192.0.2.1", alice)
	th.Fail("192.0.2.2", alice)
	th.Sleep = func(time.Duration) {
		// Meanwhile, two other sessions from this address fail.
		th.Fail("127.0.0.2", alice)
		th.Fail("127.0.0.2", alice)
	}
	h := startRelay(t, func(o *Options) { o.Throttle = th })
	wantCode(t, h.dialFrom(t, "127.0.0.2").Auth(sasl.NewPlainClient("", alice, alicePw)), 421, smtp.EnhancedCode{4, 7, 0}, "for this user from this address")
}
