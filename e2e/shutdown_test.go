package e2e

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestShutdownTellsIdleSessions: at SIGTERM a logged-in client waiting
// between messages gets 421 4.3.2 and the relay exits cleanly, after the
// sessions and before its store closes.
func TestShutdownTellsIdleSessions(t *testing.T) {
	r := newRelay(t, "127.0.0.1:9") // nothing is delivered in this test
	r.start()
	r.addUser("app@example.com", "shutdown-pass-1")
	idle, err := r.login(true, "app@example.com", "shutdown-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not exit within 20s of SIGTERM")
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("relay exited with status %d after SIGTERM, want 0\n%s", code, r.log())
	}
	// The 421 was written before the relay exited; the client reads it as
	// the answer to its next command.
	err = idle.Noop()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 421 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 2}) {
		t.Fatalf("idle session after SIGTERM: %v, want 421 4.3.2", err)
	}
}
