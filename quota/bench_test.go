package quota

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHoldAndWrite measures one durable hold with many sessions
// holding at once, as on a busy relay: each parallel goroutine is a
// session of one of 1000 users, and writes its hold with DB.Batch (as a
// Release does). The cost is the group-committed fsync, so it falls as
// more sessions share each batch. bbolt's defaults (MaxBatchDelay 10ms,
// MaxBatchSize 1000) are kept. The relay itself does not pay the fsync
// separately: it writes the hold in the transaction that queues the
// message (see queue.BenchmarkAdd).
//
// history=day gives every user a full day of minute buckets first, the
// largest record there can be, to show the cost of rewriting it.
func BenchmarkHoldAndWrite(b *testing.B) {
	for _, history := range []string{"none", "day"} {
		for _, perCPU := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("history=%s/sessions-per-cpu=%d", history, perCPU), func(b *testing.B) {
				benchmarkHoldAndWrite(b, history == "day", perCPU)
			})
		}
	}
}

func benchmarkHoldAndWrite(b *testing.B, fullDay bool, perCPU int) {
	const users = 1000
	clock := newClock(time.Now())
	db := openDB(b, filepath.Join(b.TempDir(), "outbound.db"))
	s, err := Open(db, clock.Now)
	if err != nil {
		b.Fatal(err)
	}
	// Limits far above the ceiling: this measures reserving, not refusing.
	lim := Limits{PerHour: 1 << 30, PerDay: 1 << 30}
	if fullDay {
		now := unixMinute(clock.Now())
		s.mu.Lock()
		for u := range users {
			w := &window{}
			for m := now - dayMinutes + 1; m <= now; m++ {
				w.b = append(w.b, bucket{m, 5})
			}
			s.users[fmt.Sprintf("user%d@example.com", u)] = w
		}
		s.mu.Unlock()
	}

	var next atomic.Int64
	b.SetParallelism(perCPU)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := fmt.Sprintf("user%d@example.com", next.Add(1)%users)
		for pb.Next() {
			r, err := s.Hold(user, lim, 1)
			if err == nil {
				err = db.Batch(r.Write)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCheck measures the RCPT-time check, which touches only memory.
func BenchmarkCheck(b *testing.B) {
	clock := newClock(time.Now())
	s, _, _ := newStore(b, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	if _, err := s.Hold("alice@example.com", lim, 40); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Check("alice@example.com", lim, 3, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
