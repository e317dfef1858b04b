package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"outbound/internal/pgtest"
)

// The tests of an Update's write batching (postgres_tx.go): queued writes
// are seen by the Update's own reads, sequences are counted in memory and
// stay exact, a write that fails in a batch fails the whole Update.

// rounds is how many batches tx, a Postgres Update, has sent so far.
func rounds(tx Tx) int { return tx.(*pgTx).rounds }

// makeBuckets creates the named buckets in p.
func makeBuckets(t *testing.T, p *Postgres, names ...string) {
	t.Helper()
	mustUpdate(t, p, func(tx Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	})
}

// keysOf lists bucket's keys and values as "k=v" through ForEach.
func keysOf(t *testing.T, b Bucket) []string {
	t.Helper()
	var out []string
	if err := b.ForEach(func(k, v []byte) error {
		out = append(out, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPostgresUpdateReadsItsQueuedWrites: Puts and Deletes are sent only
// with the next read, and every kind of read (Get, ForEach, a cursor,
// KeyN) sees them; after commit a View, and the mirror of a cached bucket,
// see them too.
func TestPostgresUpdateReadsItsQueuedWrites(t *testing.T) {
	p := openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour, "c")
	for _, bucket := range []string{"c", "d"} {
		t.Run(bucket, func(t *testing.T) {
			mustUpdate(t, p, func(tx Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte(bucket))
				if err != nil {
					return err
				}
				return b.Put([]byte("old"), []byte("1"))
			})
			mustUpdate(t, p, func(tx Tx) error {
				b := tx.Bucket([]byte(bucket))
				sent := rounds(tx)
				var key, value []byte // reused: Put must copy them
				for i := range 100 {
					key, value = fmt.Appendf(key[:0], "k%02d", i), strconv.AppendInt(value[:0], int64(i), 10)
					if err := b.Put(key, value); err != nil {
						return err
					}
				}
				if err := b.Delete([]byte("old")); err != nil {
					return err
				}
				if err := b.Put([]byte("k00"), []byte("again")); err != nil {
					return err
				}
				if r := rounds(tx); r != sent {
					t.Errorf("102 writes sent %d batches before any read, want none", r-sent)
				}
				if got := b.Get([]byte("k00")); string(got) != "again" {
					t.Errorf("Get(k00) = %q, want the queued again", got)
				}
				if r := rounds(tx); r != sent+1 {
					t.Errorf("the writes and the Get took %d batches, want 1", r-sent)
				}
				if got := b.Get([]byte("old")); got != nil {
					t.Errorf("Get of a key deleted in the Update = %q", got)
				}
				b.Put([]byte("k95"), []byte("late")) // queued again
				if n := b.KeyN(); n != 100 {
					t.Errorf("KeyN = %d, want 100", n)
				}
				b.Put([]byte("k96"), nil)
				all := keysOf(t, b)
				if len(all) != 100 || all[0] != "k00=again" || all[95] != "k95=late" || all[96] != "k96=" {
					t.Errorf("ForEach saw %d keys: %q ...", len(all), all[:min(len(all), 3)])
				}
				b.Delete([]byte("k98"))
				c := b.Cursor()
				if k, v := c.Seek([]byte("k97")); string(k) != "k97" || string(v) != "97" {
					t.Errorf("Seek(k97) = %q=%q", k, v)
				}
				if k, _ := c.Next(); string(k) != "k99" {
					t.Errorf("Next after k97 = %q, want k99 (k98 deleted)", k)
				}
				return nil
			})
			mustView(t, p, func(tx Tx) error {
				b := tx.Bucket([]byte(bucket))
				if n := b.KeyN(); n != 99 {
					t.Errorf("after commit KeyN = %d, want 99", n)
				}
				for k, want := range map[string]string{"k00": "again", "k95": "late", "k42": "42", "k98": "", "old": ""} {
					if got := b.Get([]byte(k)); string(got) != want {
						t.Errorf("after commit %s = %q, want %q", k, got, want)
					}
				}
				return nil
			})
		})
	}
}

// TestPostgresUpdateWritesNeedNoReads: an Update that only writes to a
// bucket it opened sends its writes with COMMIT, and an Update that sends
// nothing commits nothing and reaches no database.
func TestPostgresUpdateWritesNeedNoReads(t *testing.T) {
	p := openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour)
	makeBuckets(t, p, "d")
	var before int
	mustUpdate(t, p, func(tx Tx) error {
		b := tx.Bucket([]byte("d"))
		before = rounds(tx)
		for i := range 3 * queueMax / 2 {
			if err := b.Put([]byte(fmt.Sprintf("%05d", i)), []byte("v")); err != nil {
				return err
			}
		}
		if r := rounds(tx) - before; r != 1 {
			t.Errorf("%d writes sent %d batches, want 1 (the queue is full at %d)", 3*queueMax/2, r, queueMax)
		}
		return nil
	})
	if before != 1 {
		t.Errorf("opening a bucket took %d batches, want 1 (BEGIN, its lock, its row)", before)
	}
	mustView(t, p, func(tx Tx) error {
		if n := tx.Bucket([]byte("d")).KeyN(); n != 3*queueMax/2 {
			t.Errorf("KeyN = %d after commit", n)
		}
		return nil
	})
	mustUpdate(t, p, func(tx Tx) error {
		if r := rounds(tx); r != 0 {
			t.Errorf("an Update that does nothing sent %d batches", r)
		}
		return nil
	})
}

// TestPostgresNextSequenceInOneUpdate: many NextSequence calls in one
// Update count on, Sequence and SetSequence agree with them, the next
// Update continues, and a failed Update or a bucket deleted in the same
// Update leaves no trace of the counts.
func TestPostgresNextSequenceInOneUpdate(t *testing.T) {
	p := openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour)
	makeBuckets(t, p, "d")
	mustUpdate(t, p, func(tx Tx) error {
		b := tx.Bucket([]byte("d"))
		sent := rounds(tx)
		for want := uint64(1); want <= 1000; want++ {
			if got, err := b.NextSequence(); err != nil || got != want {
				t.Fatalf("NextSequence = %d, %v; want %d", got, err, want)
			}
		}
		if got := b.Sequence(); got != 1000 {
			t.Errorf("Sequence in the Update = %d, want 1000", got)
		}
		if r := rounds(tx); r != sent {
			t.Errorf("1000 NextSequence calls sent %d batches, want none", r-sent)
		}
		return nil
	})
	mustUpdate(t, p, func(tx Tx) error {
		b := tx.Bucket([]byte("d"))
		if got, _ := b.NextSequence(); got != 1001 {
			t.Errorf("NextSequence in the next Update = %d, want 1001", got)
		}
		if err := b.SetSequence(5000); err != nil {
			return err
		}
		if got := b.Sequence(); got != 5000 {
			t.Errorf("Sequence after SetSequence(5000) = %d", got)
		}
		if got, _ := b.NextSequence(); got != 5001 {
			t.Errorf("NextSequence after SetSequence(5000) = %d", got)
		}
		return nil
	})
	failed := errors.New("fn failed")
	if err := p.Update(func(tx Tx) error {
		tx.Bucket([]byte("d")).NextSequence()
		return failed
	}); err != failed {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	mustUpdate(t, p, func(tx Tx) error {
		b := tx.Bucket([]byte("d"))
		if got := b.Sequence(); got != 5001 {
			t.Errorf("Sequence after a failed Update = %d, want 5001", got)
		}
		// Deleted and made again in one Update: the old count is gone.
		b.NextSequence()
		if err := tx.DeleteBucket([]byte("d")); err != nil {
			return err
		}
		nb, err := tx.CreateBucketIfNotExists([]byte("d"))
		if err != nil {
			return err
		}
		if got, _ := nb.NextSequence(); got != 1 {
			t.Errorf("NextSequence of the bucket made again = %d, want 1", got)
		}
		return nil
	})
	mustView(t, p, func(tx Tx) error {
		if got := tx.Bucket([]byte("d")).Sequence(); got != 1 {
			t.Errorf("Sequence after commit = %d, want 1", got)
		}
		return nil
	})
}

// TestPostgresNextSequenceIsExactAcrossNodes: Updates racing on two nodes
// (each several NextSequence calls, every third one failing on purpose)
// hand out every number once: the committed ones are exactly 1..Sequence,
// no gap and no repeat.
func TestPostgresNextSequenceIsExactAcrossNodes(t *testing.T) {
	const goroutines, updates, each = 6, 12, 5
	dsn := pgtest.Shared(t).NewDatabase(t)
	nodes := []*Postgres{openPostgres(t, dsn, "a", time.Hour), openPostgres(t, dsn, "b", time.Hour)}
	makeBuckets(t, nodes[0], "d")
	var mu sync.Mutex
	var got []uint64
	failed := errors.New("failed on purpose")
	var wg sync.WaitGroup
	for _, p := range nodes {
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := range updates {
					var mine []uint64
					err := p.Update(func(tx Tx) error {
						mine = mine[:0]
						b := tx.Bucket([]byte("d"))
						for range each {
							n, err := b.NextSequence()
							if err != nil {
								return err
							}
							mine = append(mine, n)
							// A write per number, as the event log does.
							if err := b.Put([]byte(fmt.Sprintf("%08d", n)), nil); err != nil {
								return err
							}
						}
						if (g+u)%3 == 0 {
							return failed
						}
						return nil
					})
					switch {
					case err == nil:
						mu.Lock()
						got = append(got, mine...)
						mu.Unlock()
					case !errors.Is(err, failed):
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	for i, n := range got {
		if n != uint64(i+1) {
			t.Fatalf("the committed numbers are not 1..%d: number %d is %d", len(got), i+1, n)
		}
	}
	for _, p := range nodes {
		mustView(t, p, func(tx Tx) error {
			b := tx.Bucket([]byte("d"))
			if s, n := b.Sequence(), b.KeyN(); s != uint64(len(got)) || n != len(got) {
				t.Errorf("Sequence = %d, keys %d; want %d committed numbers", s, n, len(got))
			}
			return nil
		})
	}
}

// idleInTransaction counts the backends of p's database left in a
// transaction (a connection given back to the pool mid-transaction).
//
// A connection may be in a transaction for a moment for reasons of its own
// (the listener re-reading a key another commit announced), so it waits up
// to 5 s for none: a connection left in a transaction stays there.
func idleInTransaction(t *testing.T, p *Postgres) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := p.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresFailedBatchFailsTheUpdate: a queued Put that PostgreSQL
// refuses (its bucket deleted behind the Update's back) fails the Update
// whether the refusal comes with a read or with COMMIT: the writes queued
// with it to another bucket, and the sequence, are not committed, and the
// connection goes back to the pool clean.
func TestPostgresFailedBatchFailsTheUpdate(t *testing.T) {
	for _, when := range []string{"read", "commit"} {
		t.Run(when, func(t *testing.T) {
			p := openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour, "c")
			mustUpdate(t, p, func(tx Tx) error {
				for _, n := range []string{"c", "d", "gone"} {
					b, err := tx.CreateBucketIfNotExists([]byte(n))
					if err != nil {
						return err
					}
					if err := b.Put([]byte("k"), []byte("before")); err != nil {
						return err
					}
				}
				return nil
			})
			var putErr error
			var readAfter []byte
			attempts := 0
			err := p.Update(func(tx Tx) error {
				attempts++
				c, d, gone := tx.Bucket([]byte("c")), tx.Bucket([]byte("d")), tx.Bucket([]byte("gone"))
				// Not as a node would (it takes the bucket's lock first).
				if _, err := p.Pool().Exec(context.Background(), "DELETE FROM kv_buckets WHERE name = 'gone'"); err != nil {
					t.Fatal(err)
				}
				c.Put([]byte("k"), []byte("after"))
				d.NextSequence()
				d.Put([]byte("k"), []byte("after"))
				putErr = gone.Put([]byte("k2"), []byte("x")) // queued: no error yet
				c.Put([]byte("k3"), []byte("after"))
				if when == "read" {
					readAfter = d.Get([]byte("k"))
				}
				return nil
			})
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23503" {
				t.Fatalf("Update = %v, want the foreign key violation", err)
			}
			if putErr != nil || readAfter != nil || attempts != 1 {
				t.Errorf("queued Put = %v, read after the failure = %q, attempts %d; want nil, nil, 1", putErr, readAfter, attempts)
			}
			mustView(t, p, func(tx Tx) error {
				c, d := tx.Bucket([]byte("c")), tx.Bucket([]byte("d"))
				if got := keysOf(t, c); len(got) != 1 || got[0] != "k=before" {
					t.Errorf("cached bucket after the failed Update: %q", got)
				}
				if got := d.Get([]byte("k")); string(got) != "before" || d.Sequence() != 0 {
					t.Errorf("d after the failed Update: k=%q, sequence %d", got, d.Sequence())
				}
				return nil
			})
			if n := idleInTransaction(t, p); n != 0 {
				t.Errorf("%d connections left in a transaction", n)
			}
			mustUpdate(t, p, func(tx Tx) error { return tx.Bucket([]byte("d")).Put([]byte("k"), []byte("next")) })
			mustView(t, p, func(tx Tx) error {
				if got := tx.Bucket([]byte("d")).Get([]byte("k")); string(got) != "next" {
					t.Errorf("the next Update's write reads %q", got)
				}
				return nil
			})
		})
	}
}

// TestPostgresDeadlockRetryStartsClean: of two Updates that deadlock on
// two buckets' locks, the one PostgreSQL cancels runs again from nothing:
// its first attempt's queued writes and sequence counts are gone, so each
// bucket ends with one key per Update (from its last attempt) and a
// sequence of exactly 2.
func TestPostgresDeadlockRetryStartsClean(t *testing.T) {
	p := openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour, "x")
	makeBuckets(t, p, "x", "y")
	var bothLocked sync.WaitGroup
	bothLocked.Add(2)
	var total atomic.Int64
	update := func(first, second string) error {
		var once sync.Once
		attempt := 0
		return p.Update(func(tx Tx) error {
			attempt++
			total.Add(1)
			key := []byte(fmt.Sprintf("%s-attempt-%d", first, attempt))
			a := tx.Bucket([]byte(first))
			a.NextSequence()
			if err := a.Put(key, []byte("1")); err != nil {
				return err
			}
			if a.Get(key) == nil { // sends the Put: the first lock is held
				return errors.New("the Put is not read back")
			}
			once.Do(func() { bothLocked.Done(); bothLocked.Wait() })
			b := tx.Bucket([]byte(second)) // the second lock: one of the two deadlocks
			b.NextSequence()
			return b.Put(key, []byte("2"))
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- update("x", "y") }()
	go func() { errs <- update("y", "x") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := total.Load(); n < 3 {
		t.Fatalf("%d attempts: no deadlock was retried", n)
	}
	mustView(t, p, func(tx Tx) error {
		for _, n := range []string{"x", "y"} {
			b := tx.Bucket([]byte(n))
			keys := keysOf(t, b)
			var firsts int
			for _, kv := range keys {
				if bytes.HasPrefix([]byte(kv), []byte(n+"-")) {
					firsts++
				}
			}
			if len(keys) != 2 || firsts != 1 || b.Sequence() != 2 {
				t.Errorf("bucket %s: keys %q, sequence %d; want one key per Update and sequence 2", n, keys, b.Sequence())
			}
		}
		return nil
	})
	if n := idleInTransaction(t, p); n != 0 {
		t.Errorf("%d connections left in a transaction", n)
	}
}

// BenchmarkPostgresShipBatch is one Update as the shipper makes it for a
// batch of 256 events: the mark read, per event a NextSequence and three
// Puts over three buckets, the mark written. It uses only the store's
// interface, so it runs on the code before write batching too (BENCH.md,
// "write batching").
func BenchmarkPostgresShipBatch(b *testing.B) {
	p, err := OpenPostgres(context.Background(), PostgresOptions{DSN: pgtest.Shared(b).NewDatabase(b), Node: "a"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	names := []string{"events", "by-message", "refs", "marks"}
	if err := p.Update(func(tx Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("x"), 400) // an event's JSON
	b.ResetTimer()
	for range b.N {
		if err := p.Update(func(tx Tx) error {
			evs, idx, refs, marks := tx.Bucket([]byte("events")), tx.Bucket([]byte("by-message")), tx.Bucket([]byte("refs")), tx.Bucket([]byte("marks"))
			marks.Get([]byte("outbox"))
			for range 256 {
				seq, err := evs.NextSequence()
				if err != nil {
					return err
				}
				key := []byte(fmt.Sprintf("%016x", seq))
				if err := evs.Put(key, value); err != nil {
					return err
				}
				if err := idx.Put(append([]byte("message/"), key...), nil); err != nil {
					return err
				}
				if err := refs.Put(append([]byte("ref/"), key...), []byte("message")); err != nil {
					return err
				}
			}
			return marks.Put([]byte("outbox"), []byte("mark"))
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/256, "µs/event")
}
