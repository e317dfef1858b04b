package relay

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A slow client that keeps sending is never cut off: read_timeout bounds
// silence, not the whole DATA (go-smtp alone sets the deadline once, before
// the DATA command).
func TestSlowDataWithinReadTimeoutIsAccepted(t *testing.T) {
	const timeout = 400 * time.Millisecond
	h := startRelay(t, func(o *Options) { o.ReadTimeout = timeout })
	rc := h.rawLogin(t)
	rc.cmd(t, "MAIL FROM:<"+alice+">", 250)
	rc.cmd(t, "RCPT TO:<bob@example.net>", 250)
	rc.cmd(t, "DATA", 354)
	rc.write(t, "From: "+alice+"\r\nTo: bob@example.net\r\nSubject: slow\r\n\r\n")
	// Three times the timeout in all, never silent for more than a third of it.
	for i := 0; i < 9; i++ {
		time.Sleep(timeout / 3)
		rc.write(t, "a line of a slow upload\r\n")
	}
	rc.write(t, ".\r\n")
	rc.expect(t, 250)
	if got := h.spool.count(); got != 1 {
		t.Fatalf("%d messages queued, want 1", got)
	}
}

// A client that falls silent for longer than read_timeout is disconnected.
func TestSilentClientIsDisconnectedAfterReadTimeout(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.ReadTimeout = 200 * time.Millisecond })
	rc := h.rawLogin(t)
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := rc.br.ReadString('\n')
	if !strings.HasPrefix(line, "421 4.4.2") {
		t.Fatalf("after the timeout the server said %q, want 421 4.4.2", line)
	}
}

// At shutdown a session waiting for a command gets 421 4.3.2 and is closed,
// a message being received still gets its 250 and is queued, and Shutdown
// returns only once no session is left.
func TestShutdownEndsIdleSessionsAndFinishesMessages(t *testing.T) {
	h := startRelay(t, nil)
	idle := h.rawLogin(t)
	sending := h.rawLogin(t)
	sending.cmd(t, "MAIL FROM:<"+alice+">", 250)
	sending.cmd(t, "RCPT TO:<bob@example.net>", 250)
	sending.cmd(t, "DATA", 354)
	sending.write(t, "From: "+alice+"\r\nTo: bob@example.net\r\nSubject: in flight\r\n\r\nfirst half\r\n")

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- h.backend.Shutdown(ctx)
	}()

	// The idle session is told why it is closed, unasked.
	idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := idle.br.ReadString('\n'); !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Fatalf("idle session at shutdown: %q %v, want 421 4.3.2", line, err)
	}
	if _, err := idle.br.ReadString('\n'); err == nil {
		t.Fatal("the idle session's connection is still open after its 421")
	}
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while a message was still being received", err)
	default:
	}

	sending.write(t, "second half\r\n.\r\n")
	sending.expect(t, 250)
	if got := h.spool.count(); got != 1 {
		t.Fatalf("%d messages queued, want 1", got)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last session ended")
	}
	// New connections are no longer accepted.
	if c, err := smtp.DialTLS(h.implicitAddr, h.clientTLS); err == nil {
		c.Close()
		t.Fatal("a connection was accepted after Shutdown")
	}
}

// When the shutdown deadline passes, the remaining connections are closed
// and Shutdown reports it.
func TestShutdownDeadlineClosesBusySessions(t *testing.T) {
	h := startRelay(t, nil)
	sending := h.rawLogin(t)
	sending.cmd(t, "MAIL FROM:<"+alice+">", 250)
	sending.cmd(t, "RCPT TO:<bob@example.net>", 250)
	sending.cmd(t, "DATA", 354)
	sending.write(t, "From: "+alice+"\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.backend.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline's error", err)
	}
	sending.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := sending.br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "421 4.3.2") {
		t.Fatalf("the unfinished message's session read %q, %v; want 421 4.3.2 before the close", line, err)
	}
	if _, err := sending.br.ReadString('\n'); err == nil {
		t.Fatal("the connection of the unfinished message is still open")
	}
	if got := h.spool.count(); got != 0 {
		t.Fatalf("%d messages queued from an unfinished DATA", got)
	}
}

// A client that sends and never reads leaves go-smtp blocked writing its
// replies (holding the TLS connection's write lock). Past the deadline
// Shutdown must still end it promptly: the 421 it tries to write waits a
// moment at most.
func TestShutdownDeadlineDoesNotWaitForAClientThatNeverReads(t *testing.T) {
	h := startRelay(t, nil)
	rc := h.rawLogin(t)
	var written atomic.Int64
	go func() {
		noops := []byte(strings.Repeat("NOOP\r\n", 1000))
		for {
			if _, err := rc.c.Write(noops); err != nil {
				return
			}
			written.Add(1)
		}
	}()
	// Our writes stop going through once the relay stops reading, which it
	// does when its replies have filled the socket buffers and it is
	// blocked writing one.
	// One quiet moment may only be a busy machine: wait for three in a row.
	for last, still, deadline := int64(-1), 0, time.Now().Add(20*time.Second); still < 3; {
		time.Sleep(300 * time.Millisecond)
		n := written.Load()
		if n == last {
			still++
		} else {
			still = 0
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay kept reading for 20s: its replies never filled the buffers")
		}
		last = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	returned := make(chan error, 1)
	go func() { returned <- h.backend.Shutdown(ctx) }()
	select {
	case err := <-returned:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want the deadline's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown still waiting 5s after its deadline for a client that reads nothing")
	}
}
