package groupcommit

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "test.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("b"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

func put(key string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put([]byte(key), []byte("v")) }
}

func count(t *testing.T, db *bolt.DB) int {
	t.Helper()
	n := 0
	db.View(func(tx *bolt.Tx) error { n = tx.Bucket([]byte("b")).Stats().KeyN; return nil })
	return n
}

// Every concurrent call is committed, and they share transactions.
func TestConcurrentCallsAllCommittedInFewerTransactions(t *testing.T) {
	db := openDB(t)
	c := New(db)
	const writers = 200
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Update(put(fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := count(t, db); got != writers {
		t.Fatalf("%d keys on disk, want %d", got, writers)
	}
	// Each committed write transaction takes the next transaction id.
	var txid int
	db.View(func(tx *bolt.Tx) error { txid = tx.ID(); return nil })
	if txid >= writers {
		t.Errorf("%d write transactions for %d concurrent calls: nothing was shared", txid, writers)
	}
}

// A lone caller commits at once and sees the result.
func TestSingleCall(t *testing.T) {
	db := openDB(t)
	c := New(db)
	if err := c.Update(put("k")); err != nil {
		t.Fatal(err)
	}
	if got := count(t, db); got != 1 {
		t.Fatalf("%d keys, want 1", got)
	}
}

// A failing function gets its own error; the others in its transaction are
// committed without it.
func TestFailingCallIsIsolated(t *testing.T) {
	db := openDB(t)
	c := New(db)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	var failures, successes atomic.Int32
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := put(fmt.Sprint(i))
			if i%10 == 3 {
				fn = func(tx *bolt.Tx) error {
					tx.Bucket([]byte("b")).Put([]byte("bad"+fmt.Sprint(i)), []byte("x"))
					return boom
				}
			}
			err := c.Update(fn)
			switch {
			case i%10 == 3 && errors.Is(err, boom):
				failures.Add(1)
			case i%10 != 3 && err == nil:
				successes.Add(1)
			default:
				t.Errorf("call %d: unexpected result %v", i, err)
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 5 || successes.Load() != 45 {
		t.Fatalf("%d failures, %d successes; want 5 and 45", failures.Load(), successes.Load())
	}
	if got := count(t, db); got != 45 {
		t.Fatalf("%d keys on disk, want 45 (a failed call's writes must be rolled back)", got)
	}
}

// A commit that fails as a whole reports its error to every call in it.
func TestCommitErrorReachesEveryCall(t *testing.T) {
	db := openDB(t)
	c := New(db)
	db.Close()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Update(put(fmt.Sprint(i))); err == nil {
				t.Errorf("call %d succeeded on a closed database", i)
			}
		}()
	}
	wg.Wait()
	// The committer is idle again, not stuck with a leader that left.
	if err := c.Update(put("after")); err == nil {
		t.Error("call after the failures succeeded on a closed database")
	}
}

func BenchmarkUpdate(b *testing.B) {
	for _, writers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db := openDB(b)
			c := New(db)
			value := make([]byte, 4096)
			var n atomic.Int64
			b.SetParallelism(writers)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprint(n.Add(1))
					if err := c.Update(func(tx *bolt.Tx) error {
						return tx.Bucket([]byte("b")).Put([]byte(key), value)
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// A function that panics gets an error; the others in its transaction are
// committed, and the committer keeps working.
func TestPanickingCallIsIsolated(t *testing.T) {
	db := openDB(t)
	c := New(db)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := put(fmt.Sprint(i))
			if i == 7 {
				fn = func(*bolt.Tx) error { panic("bug") }
			}
			if err := c.Update(fn); (err != nil) != (i == 7) {
				t.Errorf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if err := c.Update(put("after")); err != nil {
		t.Fatal(err)
	}
	if got := count(t, db); got != 20 {
		t.Fatalf("%d keys on disk, want 20 (19 calls and the one after)", got)
	}
}

// A panic raised inside bbolt's Update itself, not in one of the batch's
// functions (here by a commit handler, which bbolt runs after committing),
// fails every call of that transaction with an error instead of escaping
// from the leader; the committer is not left busy, and the next call
// commits.
func TestPanicInsideBoltUpdateFailsTheBatch(t *testing.T) {
	db := openDB(t)
	c := New(db)

	// Hold the committer busy so that the calls below gather into one
	// transaction.
	release := make(chan struct{})
	leaderDone := make(chan error, 1)
	go func() {
		leaderDone <- c.Update(func(tx *bolt.Tx) error {
			<-release
			return put("leader")(tx)
		})
	}()
	waitPending := func(n int) {
		for {
			c.mu.Lock()
			got := len(c.pending)
			c.mu.Unlock()
			if got == n {
				return
			}
			runtime.Gosched()
		}
	}
	for {
		c.mu.Lock()
		busy := c.busy
		c.mu.Unlock()
		if busy {
			break
		}
		runtime.Gosched()
	}

	const calls = 5
	errs := make(chan error, calls)
	for i := range calls {
		fn := put(fmt.Sprint(i))
		if i == 2 {
			fn = func(tx *bolt.Tx) error {
				tx.OnCommit(func() { panic("bug in a commit handler") })
				return put("2")(tx)
			}
		}
		go func() { errs <- updateRecovering(c, fn) }()
	}
	waitPending(calls)
	close(release)
	if err := <-leaderDone; err != nil {
		t.Fatalf("leader: %v", err)
	}
	// A generous bound that only a committer stuck for good reaches.
	stuck := time.After(10 * time.Second)
	for range calls {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("a call in the transaction whose commit panicked reported success")
			} else if strings.Contains(err.Error(), "escaped") {
				t.Error(err)
			}
		case <-stuck:
			t.Fatal("calls of the transaction whose commit panicked never returned")
		}
	}

	after := make(chan error, 1)
	go func() { after <- updateRecovering(c, put("after")) }()
	select {
	case err := <-after:
		if err != nil {
			t.Fatalf("call after the panic: %v", err)
		}
	case <-stuck:
		t.Fatal("the committer is still busy after a panic inside bbolt's Update: every later call waits for ever")
	}
}

// updateRecovering calls c.Update and turns a panic escaping from it into
// an error, so that a test can say so rather than crash.
func updateRecovering(c *Committer, fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the panic escaped from Update: %v", p)
		}
	}()
	return c.Update(fn)
}

// While a Pause runs nothing is committed: a call made meanwhile waits,
// and is committed once the pause returns.
func TestPauseHoldsCommitsUntilItReturns(t *testing.T) {
	db := openDB(t)
	c := New(db)
	done := make(chan error, 1)
	c.Pause(func() {
		go func() { done <- c.Update(put("during")) }()
		for {
			c.mu.Lock()
			waiting := len(c.pending)
			c.mu.Unlock()
			if waiting == 1 {
				break
			}
			runtime.Gosched()
		}
		if got := count(t, db); got != 0 {
			t.Errorf("%d keys committed during the pause", got)
		}
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := count(t, db); got != 1 {
		t.Fatalf("%d keys after the pause, want 1", got)
	}
}

// A pause that arrives while calls are committing waits for their commit,
// and the calls behind it wait for the pause; everything completes.
func TestPauseAmongConcurrentCalls(t *testing.T) {
	db := openDB(t)
	c := New(db)
	var wg sync.WaitGroup
	var paused atomic.Int32
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%10 == 0 {
				c.Pause(func() { paused.Add(1) })
				return
			}
			if err := c.Update(put(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if paused.Load() != 10 || count(t, db) != 90 {
		t.Fatalf("%d pauses ran, %d keys; want 10 and 90", paused.Load(), count(t, db))
	}
}
