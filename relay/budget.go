package relay

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The relay holds each message whole in memory from its first byte until
// the queue has it, and briefly twice while it rewrites it (line endings,
// long lines, added headers). A byteBudget bounds those bytes for all
// sessions together, so that many large messages arriving at once get a
// temporary refusal (452 4.3.1, see errBusy) instead of exhausting memory.
// Every message buffer is a heldBuffer: it takes its capacity from the
// budget before allocating it, a little at a time as bytes arrive (a SIZE=
// declaration is only a promise), and gives it back when released.

var (
	// errOverBudget: the in-flight budget cannot grant the bytes asked for.
	errOverBudget = errors.New("relay: in-flight byte budget exhausted")
	// errOverLimit: the buffer would grow past max_message_bytes.
	errOverLimit = errors.New("relay: message larger than the limit")
)

// byteBudget is the count of message bytes in flight, all sessions
// together; nil means no limit.
type byteBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

func newByteBudget(max int64) *byteBudget { return &byteBudget{max: max} }

// take reserves as many bytes as it can up to want, and at least atLeast:
// what it reserved, or 0 when atLeast does not fit.
func (b *byteBudget) take(atLeast, want int64) int64 {
	if b == nil {
		return want
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(want, b.max-b.used)
	if n < atLeast {
		return 0
	}
	b.used += n
	return n
}

func (b *byteBudget) give(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// available is what take could grant now.
func (b *byteBudget) available() int64 {
	if b == nil {
		return 1<<63 - 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max - b.used
}

// heldBuffer is a message buffer whose capacity is held in a byteBudget.
// It never grows past max bytes (0: no limit) and never allocates what the
// budget did not grant. The zero value with a nil budget is unlimited.
//
// Its bytes may start past the beginning of their array: the spare room in
// front (off) lets prepend put the relay's own header fields before a
// message without copying the message (see newHeldBuffer).
type heldBuffer struct {
	b      []byte // the bytes: arr[off : off+len(b)], with cap to arr's end
	arr    []byte // the whole allocation; nil until the first reserve
	off    int    // spare bytes before b in arr
	budget *byteBudget
	max    int
	held   int64 // == cap(arr) while arr is held
}

// newHeldBuffer returns an empty buffer that keeps front bytes of spare
// room before its bytes once it allocates.
func newHeldBuffer(budget *byteBudget, max, front int) *heldBuffer {
	return &heldBuffer{budget: budget, max: max, off: front}
}

// reserve makes room for n more bytes: errOverLimit past max,
// errOverBudget when the budget cannot grant it.
func (h *heldBuffer) reserve(n int) error {
	if n <= cap(h.b)-len(h.b) {
		return nil
	}
	need := len(h.b) + n
	if h.max > 0 && need > h.max {
		return errOverLimit
	}
	// Grow by doubling, as append does, but within max and within what
	// the budget grants: when it cannot grant the double, whatever it has
	// left, if that is enough. The room in front moves along.
	newCap := max(need, 2*cap(h.b), 4096)
	if h.max > 0 {
		newCap = min(newCap, h.max)
	}
	got := h.budget.take(int64(h.off+need)-h.held, int64(h.off+newCap)-h.held)
	if got == 0 {
		return errOverBudget
	}
	// The old array is garbage once copied; the budget counts the new
	// capacity only.
	nb := make([]byte, h.held+got)
	copy(nb[h.off:], h.b)
	h.arr, h.b, h.held = nb, nb[h.off:h.off+len(h.b)], h.held+got
	return nil
}

// Write appends p, within max and the budget (io.Writer, so that the
// encoders of longlines.go can write into it).
func (h *heldBuffer) Write(p []byte) (int, error) {
	if err := h.reserve(len(p)); err != nil {
		return 0, err
	}
	h.b = append(h.b, p...)
	return len(p), nil
}

// prepend puts p in front of the buffer's bytes, within max and the
// budget like Write: into the room in front when it is large enough,
// else by moving the bytes.
func (h *heldBuffer) prepend(p []byte) error {
	if h.max > 0 && len(h.b)+len(p) > h.max {
		return errOverLimit
	}
	if len(p) <= h.off && h.arr != nil {
		h.off -= len(p)
		h.b = h.arr[h.off : h.off+len(p)+len(h.b)]
		copy(h.b, p)
		return nil
	}
	if err := h.reserve(len(p)); err != nil {
		return err
	}
	n := len(h.b)
	h.b = h.b[:n+len(p)]
	copy(h.b[len(p):], h.b[:n])
	copy(h.b, p)
	return nil
}

// dropFront removes the first n bytes; their room can take a prepend.
func (h *heldBuffer) dropFront(n int) {
	h.off += n
	h.b = h.b[n:]
}

// release gives the buffer's bytes back to the budget; the buffer must not
// be used after.
func (h *heldBuffer) release() {
	h.budget.give(h.held)
	h.b, h.arr, h.held = nil, nil, 0
}

// DefaultBytesInFlight is the in-flight budget when none is configured: an
// eighth of the memory the process may use (its cgroup's memory.max when
// set, else the machine's MemTotal; 2 GiB when neither can be read), and
// at least twice maxMessageBytes, so that one message of the largest size
// always fits while it is rewritten. The rest of the memory goes to the
// garbage collector's headroom, the queue, delivery and the connections.
func DefaultBytesInFlight(maxMessageBytes int64) int64 {
	mem := memoryLimit(readFile("/sys/fs/cgroup/memory.max"), readFile("/proc/meminfo"))
	if mem <= 0 {
		mem = 2 << 30
	}
	return max(mem/8, 2*maxMessageBytes)
}

func readFile(name string) string {
	b, _ := os.ReadFile(name)
	return string(b)
}

// memoryLimit returns the smaller of a cgroup v2 memory.max value and
// MemTotal from /proc/meminfo, in bytes; 0 when neither says.
func memoryLimit(cgroupMax, meminfo string) int64 {
	var limit int64
	if n, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64); err == nil && n > 0 {
		limit = n // "max" (no limit) does not parse
	}
	for _, line := range strings.Split(meminfo, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
				if limit == 0 || kb*1024 < limit {
					limit = kb * 1024
				}
			}
		}
	}
	return limit
}
