// Package gcpace bounds how far the relay's heap may grow past what it
// holds alive, so that bursts of large messages do not double its memory.
//
// Go's collector lets the heap grow to twice the memory alive after the
// last collection (GOGC=100) before it collects again. With small
// messages that is a few tens of MiB and costs nothing to keep. With
// large ones, what is alive is mostly message bodies in flight (being
// received, committed to the queue, delivered), and doubling it is what
// made the relay's memory peak: 50 clients sending 256 KiB messages kept
// ~43 MiB alive and let the heap reach ~87 MiB.
//
// Run sets a soft memory limit (runtime/debug.SetMemoryLimit) that follows
// the live heap: never below Base, and above it one and a half times what
// is alive plus Slack. Below Base/2 alive nothing changes (the GOGC
// target is lower than the limit); above it the collector runs as with
// GOGC=50 plus Slack, trading some CPU for memory exactly when messages
// are large, and never collecting in a loop, since the limit always
// stays above what is alive. An operator who sets GOMEMLIMIT or GOGC in
// the environment keeps full control: Run then does nothing.
package gcpace

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Options tune Run; the zero value takes the defaults.
type Options struct {
	Base     int64         // the limit when little is alive (default 64 MiB)
	Slack    int64         // added above 1.5x the live heap (default 16 MiB)
	Interval time.Duration // how often the limit follows the heap (default 500ms)
}

// Limit is the soft memory limit for live bytes of heap alive.
func (o Options) Limit(live int64) int64 {
	o = o.withDefaults()
	return max(o.Base, live+live/2+o.Slack)
}

func (o Options) withDefaults() Options {
	if o.Base <= 0 {
		o.Base = 64 << 20
	}
	if o.Slack <= 0 {
		o.Slack = 16 << 20
	}
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	return o
}

// Enabled reports whether Run would act: neither GOMEMLIMIT nor GOGC is
// set in the environment.
func Enabled() bool {
	return os.Getenv("GOMEMLIMIT") == "" && os.Getenv("GOGC") == ""
}

// Run keeps the soft memory limit at o.Limit(live heap) until done is
// closed, then lifts it. It returns at once when !Enabled().
func Run(done <-chan struct{}, o Options) {
	if !Enabled() {
		return
	}
	o = o.withDefaults()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	defer debug.SetMemoryLimit(math.MaxInt64)
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(o.Limit(int64(sample[0].Value.Uint64())))
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}
