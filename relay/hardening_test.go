package relay

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/auth"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestPasswordGuessingIsLockedOut(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	h := startRelay(t, func(o *Options) {
		o.Throttle = &auth.Throttle{MaxFailures: 3, Window: 5 * time.Minute, Lockout: 15 * time.Minute, Now: clock.Now}
	})
	for i := 1; i <= 3; i++ {
		c := h.dial(t, true)
		err := c.Auth(sasl.NewPlainClient("", alice, "guess"))
		if i < 3 {
			wantCode(t, err, 535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed")
		} else {
			wantCode(t, err, 421, smtp.EnhancedCode{4, 7, 0}, "Too many failed logins")
		}
	}
	// Even the right password is refused during the lockout.
	c := h.dial(t, true)
	wantCode(t, c.Auth(sasl.NewPlainClient("", alice, alicePw)), 421, smtp.EnhancedCode{4, 7, 0}, "refused for 15m")
	clock.Advance(16 * time.Minute)
	c = h.dial(t, false)
	if err := c.Auth(sasl.NewPlainClient("", alice, alicePw)); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

func TestFailuresOutsideTheWindowDoNotAddUp(t *testing.T) {
	clock := &stepClock{now: time.Now()}
	th := &auth.Throttle{MaxFailures: 3, Window: 5 * time.Minute, Lockout: 15 * time.Minute, Now: clock.Now}
	th.Fail("192.0.2.1", "bob")
	th.Fail("192.0.2.1", "bob")
	clock.Advance(6 * time.Minute)
	if _, locked := th.Fail("192.0.2.1", "bob"); locked {
		t.Fatal("failures older than the window counted")
	}
	if d := th.LoginDelay("bob"); d != 0 {
		t.Fatalf("failures older than the window slow the login by %v", d)
	}
	th.Fail("192.0.2.1", "bob")
	if _, locked := th.Fail("192.0.2.1", "bob"); !locked {
		t.Fatal("three failures in the window did not lock")
	}
	if _, locked := th.LoginRefused("192.0.2.1", "alice"); locked {
		t.Fatal("locking bob locked alice")
	}
	if _, locked := th.LoginRefused("192.0.2.2", "bob"); locked {
		t.Fatal("locking bob from one address locked bob from another")
	}
}

func TestConnectionLimitPerAddress(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitConnections(raw, 0, 2, true)
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, _ := net.Dial("tcp", raw.Addr().String())
		defer c.Close()
		conns = append(conns, <-accepted)
	}
	third, _ := net.Dial("tcp", raw.Addr().String())
	third.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(third).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.7.0 Too many connections") {
		t.Fatalf("third connection got %q", line)
	}
	conns[0].Close()
	fourth, _ := net.Dial("tcp", raw.Addr().String())
	defer fourth.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("a slot freed by a closed connection was not reused")
	}
}

// A session that collects MaxErrors refused commands is ended with 421
// 4.7.0 and its connection closed, on both listeners; a new connection is
// served as usual.
func TestTooManyErrorsEndTheSession(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.MaxErrors = 3 })
	for _, implicit := range []bool{true, false} {
		c := h.login(t, implicit)
		wantCode(t, c.Mail("mallory@evil.example", nil), 550, smtp.EnhancedCode{5, 7, 1}, "")
		wantCode(t, c.Mail("eve@evil.example", nil), 550, smtp.EnhancedCode{5, 7, 1}, "")
		wantCode(t, c.Mail("trudy@evil.example", nil), 421, smtp.EnhancedCode{4, 7, 0}, "Too many errors in this session (3)")
		if err := c.Noop(); err == nil {
			t.Fatalf("implicit=%v: the connection is still open after the 421", implicit)
		}
		c = h.login(t, implicit)
		if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
			t.Fatalf("implicit=%v: a new session after the 421: %v", implicit, err)
		}
	}
}

// Accepted commands do not add up towards MaxErrors.
func TestSuccessfulCommandsAreNotErrors(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.MaxErrors = 2 })
	c := h.login(t, true)
	for range 5 {
		if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, c.Mail("mallory@evil.example", nil), 550, smtp.EnhancedCode{5, 7, 1}, "")
	if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
		t.Fatalf("one refusal ended the session: %v", err)
	}
}
