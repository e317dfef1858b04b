package quota

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
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
// history=day gives every user a full day of minute buckets first, in
// memory and on disk (1000 users × 1440 minutes), to show whether a write
// grows with a busy user's history.
//
// written-B/op is what the commits wrote per hold: the bytes of the pages
// they allocated (bbolt's TxStats.PageAlloc; every allocated page is
// written at commit), not counting each commit's 4 KiB meta page.
func BenchmarkHoldAndWrite(b *testing.B) {
	// One fixed time for every run, so the day built below stays full.
	now := time.Now()
	var dayDB string
	for _, history := range []string{"none", "day"} {
		if history == "day" {
			dayDB = buildFullDayDB(b, now)
		}
		for _, perCPU := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("history=%s/sessions-per-cpu=%d", history, perCPU), func(b *testing.B) {
				benchmarkHoldAndWrite(b, now, dayDB, perCPU)
			})
		}
	}
}

const benchUsers = 1000

func benchUser(i int64) string { return fmt.Sprintf("user%d@example.com", i%benchUsers) }

// benchmarkHoldAndWrite runs on a copy of template, or on an empty
// database if template is "".
func benchmarkHoldAndWrite(b *testing.B, now time.Time, template string, perCPU int) {
	clock := newClock(now)
	path := filepath.Join(b.TempDir(), "outbound.db")
	if template != "" {
		copyFile(b, template, path)
	}
	db := openDB(b, path)
	s, err := Open(db, clock.Now)
	if err != nil {
		b.Fatal(err)
	}
	// Limits far above the ceiling: this measures reserving, not refusing.
	lim := Limits{PerHour: 1 << 30, PerDay: 1 << 30}

	var next atomic.Int64
	b.SetParallelism(perCPU)
	before := db.Stats().TxStats
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := benchUser(next.Add(1))
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
	b.StopTimer()
	after := db.Stats().TxStats
	written := after.GetPageAlloc() - before.GetPageAlloc()
	b.ReportMetric(float64(written)/float64(b.N), "written-B/op")
}

// buildFullDayDB writes a database in which every bench user has sent 5
// recipients in each of the 1440 minutes up to the one of now, and returns
// its path. It writes format version 1 records and lets Open turn them
// into its own layout; runs copy the result.
func buildFullDayDB(b *testing.B, now time.Time) string {
	path := filepath.Join(b.TempDir(), "day.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	minute := unixMinute(now)
	w := &window{}
	for m := minute - dayMinutes + 1; m <= minute; m++ {
		w.b = append(w.b, bucket{m, 5})
	}
	record := w.encode(minute - dayMinutes)
	err = db.Update(func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		for u := range int64(benchUsers) {
			if err := bk.Put([]byte(benchUser(u)), record); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Open(db, func() time.Time { return now }); err != nil {
		b.Fatal(err)
	}
	return path
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
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

// BenchmarkOpen measures a start with 1000 users who have each sent in
// every minute of the last day: Open reads all of it into memory and
// deletes what has expired (nothing here). used-MiB is the size of the
// database's pages in use (the file is larger: bbolt grows it in steps).
func BenchmarkOpen(b *testing.B) {
	now := time.Now()
	template := buildFullDayDB(b, now)
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "outbound.db")
		copyFile(b, template, path)
		db := openDB(b, path)
		b.StartTimer()
		if _, err := Open(db, func() time.Time { return now }); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(usedBytes(b, template))/(1<<20), "used-MiB")
}

// usedBytes is the size of the pages in use in the database at path.
func usedBytes(b *testing.B, path string) int64 {
	db := openDB(b, path)
	defer db.Close()
	var size int64
	err := db.View(func(tx *bbolt.Tx) error {
		size = tx.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return size - int64(db.Stats().FreePageN*db.Info().PageSize)
}
