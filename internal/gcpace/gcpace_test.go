package gcpace

import (
	"math"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimitFollowsTheLiveHeapAboveTheBase(t *testing.T) {
	o := Options{Base: 64 << 20, Slack: 16 << 20}
	for _, c := range []struct{ live, want int64 }{
		{0, 64 << 20},
		{30 << 20, 64 << 20},              // 1.5x30+16 = 61 < 64
		{40 << 20, 76 << 20},              // 1.5x40+16
		{1 << 30, 1<<30 + 1<<29 + 16<<20}, // large heaps keep half again plus slack
	} {
		if got := o.Limit(c.live); got != c.want {
			t.Errorf("Limit(%d MiB) = %d MiB, want %d MiB", c.live>>20, got>>20, c.want>>20)
		}
		if got := o.Limit(c.live); got <= c.live {
			t.Errorf("Limit(%d) = %d is not above the live heap: the collector would run in a loop", c.live, got)
		}
	}
	if got := (Options{}).Limit(0); got != 64<<20 {
		t.Errorf("default base = %d, want 64 MiB", got)
	}
}

// Run sets a limit while it runs and lifts it when done; with GOGC or
// GOMEMLIMIT in the environment it leaves the runtime alone.
func TestRunSetsAndLiftsTheLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	done := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		Run(done, Options{Interval: time.Millisecond})
		close(returned)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) == math.MaxInt64 {
		if time.Now().After(deadline) {
			t.Fatal("Run set no memory limit")
		}
		time.Sleep(time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got < 64<<20 {
		t.Fatalf("limit %d is below the base", got)
	}
	close(done)
	<-returned
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d left in place after Run returned", got)
	}

	t.Setenv("GOGC", "200")
	Run(make(chan struct{}), Options{}) // returns at once, or the test hangs
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("with GOGC set, Run set a limit: %d", got)
	}
}
