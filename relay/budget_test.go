package relay

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"outbound/queue"
)

// gateSpool holds every Add until release is closed, so that a test can
// keep a message in flight; entered tells it one arrived.
type gateSpool struct {
	memSpool
	entered chan struct{}
	release chan struct{}
}

func (g *gateSpool) Add(m *queue.Message, body []byte, also ...queue.TxHook) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.memSpool.Add(m, body, also...)
}

// messageOfSize returns a message of exactly n bytes from alice.
func messageOfSize(n int) string {
	head := "From: alice@example.com\r\nSubject: big\r\n\r\n"
	line := strings.Repeat("x", 98) + "\r\n"
	body := strings.Repeat(line, (n-len(head))/len(line))
	return head + body + strings.Repeat("y", n-len(head)-len(body)-2) + "\r\n"
}

// While messages in flight hold the in-flight budget, a new transaction is
// refused with 452 4.3.1: at MAIL when it declares more than is left, at
// the end of DATA when it outgrows it. The budget comes back when the
// messages are queued. Without a budget, every session buffered its
// message whole, however many arrived at once.
func TestInFlightBudgetRefusesNewTransactions(t *testing.T) {
	gate := &gateSpool{entered: make(chan struct{}, 2), release: make(chan struct{})}
	h := startRelay(t, func(o *Options) {
		o.Spool = gate
		o.MaxBytesInFlight = 2 * o.MaxMessageBytes // 128 KiB, the least config allows
	})
	// Two messages of 40,000 bytes wait in the queue's Add: about 80 kB
	// of the budget is held.
	held := messageOfSize(40000)
	done := make(chan error, 2)
	for _, implicit := range []bool{true, false} {
		c := h.login(t, implicit)
		go func() {
			if err := c.Mail(alice, &smtp.MailOptions{Size: int64(len(held))}); err != nil {
				done <- err
				return
			}
			if err := c.Rcpt("bob@example.net", nil); err != nil {
				done <- err
				return
			}
			w, err := c.Data()
			if err != nil {
				done <- err
				return
			}
			w.Write([]byte(held))
			done <- w.Close()
		}()
		<-gate.entered
	}

	c := h.login(t, true)
	wantCode(t, c.Mail(alice, &smtp.MailOptions{Size: 60000}), 452, smtp.EnhancedCode{4, 3, 1}, "too many messages are being received")
	next := messageOfSize(60000)
	wantCode(t, send(c, alice, []string{"bob@example.net"}, next), 452, smtp.EnhancedCode{4, 3, 1}, "please try again shortly")

	close(gate.release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("a held message: %v", err)
		}
	}
	if err := send(c, alice, []string{"bob@example.net"}, next); err != nil {
		t.Fatalf("once the budget came back: %v", err)
	}
	if n := gate.count(); n != 3 {
		t.Fatalf("%d messages queued, want 3", n)
	}
}

// A SIZE= declaration no longer sets memory aside before a byte arrives:
// the buffer starts at what the budget grants and grows with the data.
func TestSizeDeclarationAllocatesOnlyWhatTheBudgetGrants(t *testing.T) {
	budget := newByteBudget(16 << 10)
	buf := &heldBuffer{budget: budget, max: 25 << 20}
	msg := "From: alice@example.com\r\n\r\nshort, whatever SIZE said\r\n"
	if err := readMessage(strings.NewReader(msg), 20<<20, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf.b) != msg || cap(buf.b) > 16<<10 || budget.used != int64(cap(buf.b)) {
		t.Fatalf("read %q into a buffer of %d bytes, budget used %d", buf.b, cap(buf.b), budget.used)
	}
	buf.release()
	if budget.used != 0 {
		t.Fatalf("%d bytes still held after release", budget.used)
	}

	// A message larger than the budget fails with errOverBudget, and
	// what it held goes back.
	buf = &heldBuffer{budget: budget, max: 25 << 20}
	err := readMessage(strings.NewReader(strings.Repeat("x", 20<<10)), 0, buf)
	if !errors.Is(err, errOverBudget) || budget.used != 16<<10 {
		t.Fatalf("got %v with %d bytes used, want errOverBudget with all 16 KiB", err, budget.used)
	}
	buf.release()
	if budget.used != 0 {
		t.Fatalf("%d bytes still held after release", budget.used)
	}
}

// What is queued is held to max_message_bytes too: a message that fits as
// sent but not once its bare line endings became CRLF, or once the relay's
// headers are added, gets 552 5.3.4. It used to be queued larger than the
// limit.
func TestQueuedMessageHeldToMaxMessageBytes(t *testing.T) {
	h := startRelay(t, nil) // max_message_bytes 64 KiB
	for _, msg := range []string{
		// 60,029 bytes with 12,000 bare LFs: 72,029 once they are CRLF.
		"From: alice@example.com\r\n\r\n" + strings.Repeat("abcd\n", 12000) + "\r\n",
		// CRLF throughout, 100 bytes short of the limit: the Received,
		// Message-ID and Date headers do not fit.
		messageOfSize(64<<10 - 100),
	} {
		if len(msg) >= 64<<10 {
			t.Fatalf("test message of %d bytes is not under the limit", len(msg))
		}
		rc := h.rawLogin(t)
		rc.cmd(t, "MAIL FROM:<alice@example.com>", 250)
		rc.cmd(t, "RCPT TO:<bob@example.net>", 250)
		rc.cmd(t, "DATA", 354)
		rc.write(t, msg+".\r\n")
		if line := rc.expect(t, 552); !strings.HasPrefix(line, "5.3.4 Message too large: the limit is 65536 bytes, counted after") {
			t.Fatalf("reply %q", line)
		}
	}
	if h.spool.count() != 0 {
		t.Fatal("a message larger than the limit was queued")
	}
}

func TestMemoryLimit(t *testing.T) {
	meminfo := "MemTotal:        8036780 kB\nMemFree:          123456 kB\n"
	for _, tc := range []struct {
		cgroup, meminfo string
		want            int64
	}{
		{"max\n", meminfo, 8036780 * 1024},
		{"1073741824\n", meminfo, 1 << 30},
		{"", meminfo, 8036780 * 1024},
		{"17179869184\n", meminfo, 8036780 * 1024},
		{"", "", 0},
	} {
		if got := memoryLimit(tc.cgroup, tc.meminfo); got != tc.want {
			t.Errorf("memoryLimit(%q, ...) = %d, want %d", tc.cgroup, got, tc.want)
		}
	}
	if got := DefaultBytesInFlight(1 << 40); got != 2<<40 {
		t.Errorf("DefaultBytesInFlight does not fit two messages of the largest size: %d", got)
	}
}

// A refusal for lack of memory is not counted as a storage error, which
// operators alert on as a full disk.
func TestBusyIsNotAStorageError(t *testing.T) {
	if got := errBusy.outcome; got != "temporary_error" {
		t.Fatalf("errBusy counts as %q", got)
	}
	if got := errStorage.outcome; got != "storage_error" {
		t.Fatalf("errStorage counts as %q", got)
	}
}

// The relay's fields go into the room in front of a received message, in
// the same array, while the budget holds exactly that array; a prefix too
// large for the room still works by moving the message; max holds both ways.
func TestPrependUsesTheRoomInFront(t *testing.T) {
	budget := newByteBudget(1 << 20)
	buf := newHeldBuffer(budget, 64<<10, 16)
	body := strings.Repeat("b", 5000)
	if err := readMessage(strings.NewReader("Subject: x\r\n\r\n"+body), 0, buf); err != nil {
		t.Fatal(err)
	}
	arr := &buf.arr[0]
	buf.dropFront(len("Subject: x\r\n"))
	if err := buf.prepend([]byte("Received: by relay\r\nSubject: y\r\n")); err != nil {
		t.Fatal(err)
	}
	if want := "Received: by relay\r\nSubject: y\r\n\r\n" + body; string(buf.b) != want {
		t.Fatalf("after prepend: %q", buf.b)
	}
	if &buf.arr[0] != arr || budget.used != int64(cap(buf.arr)) {
		t.Fatalf("prepend that fits the room reallocated (or the budget lost count: %d used, %d held)", budget.used, cap(buf.arr))
	}

	big := strings.Repeat("X-Long: yes\r\n", 100)
	if err := buf.prepend([]byte(big)); err != nil {
		t.Fatal(err)
	}
	if want := big + "Received: by relay\r\nSubject: y\r\n\r\n" + body; string(buf.b) != want {
		t.Fatalf("after a prepend larger than the room: %q", buf.b[:80])
	}
	if budget.used != int64(cap(buf.arr)) {
		t.Fatalf("budget used %d, buffer holds %d", budget.used, cap(buf.arr))
	}

	if err := buf.prepend(make([]byte, 64<<10)); !errors.Is(err, errOverLimit) {
		t.Fatalf("prepend past max: %v, want errOverLimit", err)
	}
	buf.release()
	if budget.used != 0 {
		t.Fatalf("%d bytes still held after release", budget.used)
	}
}
