package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/internal/pgtest"
	"outbound/internal/testutil"
)

// waitFor is how long a test waits for something another goroutine or
// node does (generous: a loaded CI machine).
const waitFor = 30 * time.Second

// openPostgres opens a store on dsn as node, closed at cleanup.
func openPostgres(t *testing.T, dsn, node string, maxStale time.Duration, cached ...string) *Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := OpenPostgres(ctx, PostgresOptions{DSN: dsn, Node: node, Cached: cached, MaxStale: maxStale})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// eventually polls cond until it holds, failing t after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: not %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stores are the implementations the conformance tests run against: bbolt,
// and Postgres with the bucket "c" cached (its Views read the mirror) and
// "d" not.
func stores(t *testing.T) map[string]func(t *testing.T) DB {
	return map[string]func(t *testing.T) DB{
		"bolt": func(t *testing.T) DB {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "conformance.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return Bolt(db)
		},
		"postgres": func(t *testing.T) DB {
			return openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour, "c")
		},
	}
}

// conform runs test against every implementation, on the cached bucket
// "c" and the uncached "d" (the same for bbolt).
func conform(t *testing.T, test func(t *testing.T, db DB, bucket []byte)) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			for _, bucket := range []string{"c", "d"} {
				t.Run(bucket, func(t *testing.T) { test(t, db, []byte(bucket)) })
			}
		})
	}
}

func mustUpdate(t *testing.T, db DB, fn func(Tx) error) {
	t.Helper()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func mustView(t *testing.T, db DB, fn func(Tx) error) {
	t.Helper()
	if err := db.View(fn); err != nil {
		t.Fatal(err)
	}
}

func TestStorePutGetDelete(t *testing.T) {
	conform(t, func(t *testing.T, db DB, bucket []byte) {
		mustView(t, db, func(tx Tx) error {
			if tx.Bucket(bucket) != nil {
				t.Error("a bucket never created exists")
			}
			if tx.Writable() {
				t.Error("a View is writable")
			}
			return nil
		})
		mustUpdate(t, db, func(tx Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte("v1")); err != nil {
				return err
			}
			if got := b.Get([]byte("k")); string(got) != "v1" {
				t.Errorf("Get in the writing Update = %q", got)
			}
			if err := b.Put([]byte("gone"), []byte("x")); err != nil {
				return err
			}
			if err := b.Put([]byte("empty"), nil); err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v2"))
		})
		mustUpdate(t, db, func(tx Tx) error { return tx.Bucket(bucket).Delete([]byte("gone")) })
		mustView(t, db, func(tx Tx) error {
			b := tx.Bucket(bucket)
			if b == nil {
				t.Fatal("the bucket is missing after commit")
			}
			if got := b.Get([]byte("k")); string(got) != "v2" {
				t.Errorf("Get(k) = %q, want v2", got)
			}
			if got := b.Get([]byte("gone")); got != nil {
				t.Errorf("deleted key reads %q", got)
			}
			if got := b.Get([]byte("never")); got != nil {
				t.Errorf("missing key reads %q", got)
			}
			if got := b.Get([]byte("empty")); len(got) != 0 {
				t.Errorf("empty value reads %q", got)
			}
			if n := b.KeyN(); n != 2 {
				t.Errorf("KeyN = %d, want 2", n)
			}
			if err := b.Put([]byte("k"), []byte("x")); err == nil {
				t.Error("Put in a View succeeded")
			}
			return nil
		})
		mustUpdate(t, db, func(tx Tx) error {
			if err := tx.Bucket(bucket).Put(nil, []byte("x")); err == nil {
				t.Error("Put of an empty key succeeded")
			}
			return nil
		})
	})
}

// orderedKeys are keys whose byte order differs from a text order: NUL
// bytes, 0xff, prefixes.
var orderedKeys = [][]byte{{0x00}, {0x00, 0x00}, {0x00, 0xff}, []byte("a"), []byte("ab"), []byte("b"), {0xfe}, {0xff}, {0xff, 0x00}, {0xff, 0xff}}

func TestStoreOrderAndSeek(t *testing.T) {
	conform(t, func(t *testing.T, db DB, bucket []byte) {
		mustUpdate(t, db, func(tx Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			for i := len(orderedKeys) - 1; i >= 0; i-- { // backwards
				if err := b.Put(orderedKeys[i], []byte{byte(i)}); err != nil {
					return err
				}
			}
			return nil
		})
		mustView(t, db, func(tx Tx) error {
			b := tx.Bucket(bucket)
			var got [][]byte
			if err := b.ForEach(func(k, v []byte) error {
				got = append(got, append([]byte(nil), k...))
				if !bytes.Equal(v, []byte{byte(len(got) - 1)}) {
					t.Errorf("value of %x = %x", k, v)
				}
				return nil
			}); err != nil {
				return err
			}
			if fmt.Sprintf("%x", got) != fmt.Sprintf("%x", orderedKeys) {
				t.Errorf("ForEach order %x, want %x", got, orderedKeys)
			}
			c := b.Cursor()
			for _, s := range []struct{ seek, want []byte }{
				{nil, []byte{0x00}},
				{[]byte{0x00, 0x01}, []byte{0x00, 0xff}},
				{[]byte("a"), []byte("a")},
				{[]byte("aa"), []byte("ab")},
				{[]byte{0xfe, 0x00}, []byte{0xff}},
				{[]byte{0xff, 0xff, 0x00}, nil},
			} {
				if k, _ := c.Seek(s.seek); !bytes.Equal(k, s.want) {
					t.Errorf("Seek(%x) = %x, want %x", s.seek, k, s.want)
				}
			}
			k, _ := c.Seek([]byte{0xff, 0x00})
			if k, _ = c.Next(); !bytes.Equal(k, []byte{0xff, 0xff}) {
				t.Errorf("Next after ff00 = %x", k)
			}
			if k, v := c.Next(); k != nil || v != nil {
				t.Errorf("Next past the end = %x, %x", k, v)
			}
			if k, v := c.Next(); k != nil || v != nil {
				t.Errorf("Next again past the end = %x, %x", k, v)
			}
			if k, _ := c.First(); !bytes.Equal(k, []byte{0x00}) {
				t.Errorf("First = %x", k)
			}
			return nil
		})
	})
}

// TestStoreManyKeys walks more keys than a Postgres page holds.
func TestStoreManyKeys(t *testing.T) {
	const n = 2*pageSize + 7
	conform(t, func(t *testing.T, db DB, bucket []byte) {
		mustUpdate(t, db, func(tx Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			for i := range n {
				if err := b.Put([]byte(fmt.Sprintf("%05d", i)), []byte(strconv.Itoa(i))); err != nil {
					return err
				}
			}
			return nil
		})
		mustView(t, db, func(tx Tx) error {
			b := tx.Bucket(bucket)
			i := 0
			b.ForEach(func(k, v []byte) error {
				if string(k) != fmt.Sprintf("%05d", i) || string(v) != strconv.Itoa(i) {
					t.Fatalf("key %d is %q=%q", i, k, v)
				}
				i++
				return nil
			})
			if i != n || b.KeyN() != n {
				t.Errorf("ForEach saw %d keys, KeyN %d, want %d", i, b.KeyN(), n)
			}
			stop := errors.New("stop")
			if err := b.ForEach(func(k, v []byte) error { return stop }); err != stop {
				t.Errorf("ForEach returned %v, want fn's error", err)
			}
			return nil
		})
	})
}

func TestStoreSequences(t *testing.T) {
	conform(t, func(t *testing.T, db DB, bucket []byte) {
		mustUpdate(t, db, func(tx Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			for want := uint64(1); want <= 2; want++ {
				if got, err := b.NextSequence(); err != nil || got != want {
					t.Errorf("NextSequence = %d, %v; want %d", got, err, want)
				}
			}
			return nil
		})
		mustView(t, db, func(tx Tx) error {
			b := tx.Bucket(bucket)
			if got := b.Sequence(); got != 2 {
				t.Errorf("Sequence = %d, want 2", got)
			}
			if _, err := b.NextSequence(); err == nil {
				t.Error("NextSequence in a View succeeded")
			}
			return nil
		})
		mustUpdate(t, db, func(tx Tx) error { return tx.Bucket(bucket).SetSequence(10) })
		mustUpdate(t, db, func(tx Tx) error {
			if got, err := tx.Bucket(bucket).NextSequence(); err != nil || got != 11 {
				t.Errorf("NextSequence after SetSequence(10) = %d, %v", got, err)
			}
			return nil
		})
	})
}

func TestStoreDeleteBucket(t *testing.T) {
	conform(t, func(t *testing.T, db DB, bucket []byte) {
		mustUpdate(t, db, func(tx Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			b.NextSequence()
			return b.Put([]byte("k"), []byte("v"))
		})
		mustUpdate(t, db, func(tx Tx) error { return tx.DeleteBucket(bucket) })
		mustView(t, db, func(tx Tx) error {
			if tx.Bucket(bucket) != nil {
				t.Error("a deleted bucket exists")
			}
			return nil
		})
		mustUpdate(t, db, func(tx Tx) error {
			if err := tx.DeleteBucket(bucket); !errors.Is(err, ErrBucketNotFound) {
				t.Errorf("DeleteBucket of a missing bucket = %v", err)
			}
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			if b.Get([]byte("k")) != nil || b.KeyN() != 0 || b.Sequence() != 0 {
				t.Error("a bucket made again has the old one's keys or sequence")
			}
			return nil
		})
	})
}

func TestStoreRollbackOnError(t *testing.T) {
	conform(t, func(t *testing.T, db DB, bucket []byte) {
		mustUpdate(t, db, func(tx Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("before"))
		})
		failed := errors.New("fn failed")
		err := db.Update(func(tx Tx) error {
			b := tx.Bucket(bucket)
			b.Put([]byte("k"), []byte("after"))
			b.Put([]byte("new"), []byte("x"))
			b.NextSequence()
			return failed
		})
		if err != failed {
			t.Fatalf("Update returned %v, want fn's error", err)
		}
		mustView(t, db, func(tx Tx) error {
			b := tx.Bucket(bucket)
			if got := b.Get([]byte("k")); string(got) != "before" {
				t.Errorf("k = %q after a failed Update", got)
			}
			if b.Get([]byte("new")) != nil || b.Sequence() != 0 {
				t.Error("a failed Update's writes were kept")
			}
			return nil
		})
	})
}

// terminateIdleTx ends, from outside, the backends of db's database that
// sit in a transaction (the test's own), as a lost connection would.
func terminateIdleTx(t *testing.T, p *Postgres) {
	t.Helper()
	var n int
	err := p.Pool().QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()`).Scan(&n)
	// At least the transaction's own backend; under load another of the
	// pool's connections may be caught between a pipelined BEGIN and its
	// next statement too, and ending it as well changes nothing here.
	if err != nil || n < 1 {
		t.Fatalf("terminating the transaction's backend: %d, %v", n, err)
	}
}

// TestPostgresReadErrorIsSticky: after a failed read, reads return nil,
// writes fail, Update returns the error and commits nothing.
func TestPostgresReadErrorIsSticky(t *testing.T) {
	p := openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour)
	mustUpdate(t, p, func(tx Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("d"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	var putErr error
	err := p.Update(func(tx Tx) error {
		b := tx.Bucket([]byte("d"))
		b.Put([]byte("k"), []byte("lost"))
		terminateIdleTx(t, p)
		if got := b.Get([]byte("k")); got != nil {
			t.Errorf("Get after the failure = %q, want nil", got)
		}
		putErr = b.Put([]byte("k2"), []byte("v"))
		// A bucket first opened after the failure is not nil (owners that
		// expect it must not crash) and takes nothing.
		other := tx.Bucket([]byte("other"))
		if other == nil || other.Put([]byte("k"), []byte("v")) == nil {
			t.Error("a bucket opened after the failure is nil or takes a Put")
		}
		return nil // fn does not notice: Update must
	})
	if err == nil || putErr == nil {
		t.Fatalf("Update = %v, Put = %v; want errors", err, putErr)
	}
	mustView(t, p, func(tx Tx) error {
		if got := tx.Bucket([]byte("d")).Get([]byte("k")); string(got) != "v" {
			t.Errorf("k = %q, want v (nothing committed)", got)
		}
		return nil
	})

	err = p.View(func(tx Tx) error {
		b := tx.Bucket([]byte("d"))
		b.Get([]byte("k")) // begins the transaction
		terminateIdleTx(t, p)
		if got := b.Get([]byte("k")); got != nil {
			t.Errorf("Get in a View after the failure = %q", got)
		}
		return nil
	})
	if err == nil {
		t.Fatal("a View whose read failed returned nil")
	}
}

// TestPostgresNodesSeeEachOthersWrites: a write on node A reaches B's
// mirror and B's watchers, for cached and uncached buckets.
func TestPostgresNodesSeeEachOthersWrites(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	a := openPostgres(t, dsn, "a", time.Hour, "users")
	b := openPostgres(t, dsn, "b", time.Hour, "users")
	heard := make(chan string, 100)
	b.Watch("users", func(key []byte) { heard <- "users/" + string(key) })
	b.Watch("events", func(key []byte) { heard <- "events/" + string(key) })

	mustUpdate(t, a, func(tx Tx) error {
		for _, n := range []string{"users", "events"} {
			bk, err := tx.CreateBucketIfNotExists([]byte(n))
			if err != nil {
				return err
			}
			if err := bk.Put([]byte("alice"), []byte("1")); err != nil {
				return err
			}
		}
		return nil
	})
	// A sees its own write at once.
	mustView(t, a, func(tx Tx) error {
		if got := tx.Bucket([]byte("users")).Get([]byte("alice")); string(got) != "1" {
			t.Errorf("A reads its own write as %q", got)
		}
		return nil
	})
	eventually(t, "B's mirror has alice", func() bool {
		var got []byte
		mustView(t, b, func(tx Tx) error {
			if bk := tx.Bucket([]byte("users")); bk != nil {
				got = bk.Get([]byte("alice"))
			}
			return nil
		})
		return string(got) == "1"
	})
	want := map[string]bool{"users/alice": true, "events/alice": true}
	deadline := time.After(waitFor)
	for len(want) > 0 {
		select {
		case h := <-heard:
			delete(want, h)
		case <-deadline:
			t.Fatalf("B's watchers did not hear %v", want)
		}
	}

	mustUpdate(t, a, func(tx Tx) error { return tx.Bucket([]byte("users")).Delete([]byte("alice")) })
	eventually(t, "alice deleted from B's mirror", func() bool {
		var got []byte
		mustView(t, b, func(tx Tx) error { got = tx.Bucket([]byte("users")).Get([]byte("alice")); return nil })
		return got == nil
	})
	mustUpdate(t, a, func(tx Tx) error { return tx.DeleteBucket([]byte("users")) }) // empty by now
	eventually(t, "the bucket deleted from B's mirror", func() bool {
		var gone bool
		mustView(t, b, func(tx Tx) error { gone = tx.Bucket([]byte("users")) == nil; return nil })
		return gone
	})
	mustUpdate(t, a, func(tx Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("users")); return err })
	eventually(t, "the bucket made again in B's mirror", func() bool {
		var exists bool
		mustView(t, b, func(tx Tx) error { exists = tx.Bucket([]byte("users")) != nil; return nil })
		return exists
	})
	if n := b.LiveNodes(); n != 2 { // counted when B opened, after A
		t.Errorf("B counts %d live nodes, want 2", n)
	}
	if !a.Healthy() || !b.Healthy() {
		t.Error("a node with its database up is not Healthy")
	}
}

// TestPostgresWritersOfABucketAreSerialized: read-modify-write of one key
// from two nodes × 20 goroutines loses no increment.
func TestPostgresWritersOfABucketAreSerialized(t *testing.T) {
	const goroutines, each = 20, 5
	dsn := pgtest.Shared(t).NewDatabase(t)
	nodes := []*Postgres{openPostgres(t, dsn, "a", time.Hour, "c"), openPostgres(t, dsn, "b", time.Hour, "c")}
	mustUpdate(t, nodes[0], func(tx Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte("c"))
		return err
	})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for _, p := range nodes {
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					err := p.Update(func(tx Tx) error {
						b := tx.Bucket([]byte("c"))
						n, _ := strconv.Atoi(string(b.Get([]byte("n"))))
						return b.Put([]byte("n"), []byte(strconv.Itoa(n+1)))
					})
					if err != nil {
						failures.Add(1)
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	want := strconv.Itoa(len(nodes) * goroutines * each)
	for i, p := range nodes {
		eventually(t, fmt.Sprintf("node %d's mirror reads %s", i, want), func() bool {
			var got string
			mustView(t, p, func(tx Tx) error { got = string(tx.Bucket([]byte("c")).Get([]byte("n"))); return nil })
			return got == want
		})
	}
}

// TestPostgresMigratesOnce: two nodes opening an empty database together
// both start, and each migration is applied once.
func TestPostgresMigratesOnce(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	var wg sync.WaitGroup
	ps := make([]*Postgres, 2)
	errs := make([]error, 2)
	for i := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ps[i], errs[i] = OpenPostgres(ctx, PostgresOptions{DSN: dsn, Node: strconv.Itoa(i)})
		}()
	}
	wg.Wait()
	for i, p := range ps {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		t.Cleanup(p.Close)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var rows, distinct int
	if err := ps[0].Pool().QueryRow(context.Background(), "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) || distinct != len(ms) {
		t.Errorf("schema_migrations has %d rows (%d versions), want %d", rows, distinct, len(ms))
	}
}

func TestPostgresRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	p := openPostgres(t, dsn, "a", time.Hour)
	if _, err := p.Pool().Exec(context.Background(), "INSERT INTO schema_migrations (version) VALUES (9999)"); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPostgres(context.Background(), PostgresOptions{DSN: dsn, Node: "b"})
	if err == nil || !strings.Contains(err.Error(), "newer outbound (v9999") || !strings.Contains(err.Error(), "upgrade this node") {
		t.Fatalf("OpenPostgres on a newer schema: %v", err)
	}
}

func TestPostgresBadDSNIsNotLogged(t *testing.T) {
	_, err := OpenPostgres(context.Background(), PostgresOptions{DSN: "postgres://u:sekrit@127.0.0.1:notaport/x"})
	if err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("OpenPostgres with a bad DSN: %v", err)
	}
}

// TestPostgresMirrorServesThroughAnOutage: while the database is stopped,
// Views of cached buckets read the mirror (until MaxStale), everything
// else fails; after it is back, the listener reconnects by itself, tells
// the watchers, and later writes reach the mirror again.
func TestPostgresMirrorServesThroughAnOutage(t *testing.T) {
	srv := pgtest.Start(t)
	// The cluster trusts any password: one in the DSN must reach no log.
	dsn := strings.Replace(srv.NewDatabase(t), "outbound@", "outbound:sekrit@", 1)
	var logs testutil.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := OpenPostgres(ctx, PostgresOptions{DSN: dsn, Node: "a", Cached: []string{"users"}, MaxStale: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	strict := openPostgres(t, dsn, "strict", time.Nanosecond, "users") // no stale reads
	mustUpdate(t, p, func(tx Tx) error {
		for _, n := range []string{"users", "events"} {
			b, err := tx.CreateBucketIfNotExists([]byte(n))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("alice"), []byte("1")); err != nil {
				return err
			}
		}
		return nil
	})
	eventually(t, "strict's mirror has alice", func() bool {
		var got []byte
		strict.View(func(tx Tx) error {
			if b := tx.Bucket([]byte("users")); b != nil {
				got = b.Get([]byte("alice"))
			}
			return nil
		})
		return got != nil
	})
	resynced := make(chan struct{}, 10)
	p.Watch("users", func(key []byte) {
		if key == nil {
			resynced <- struct{}{}
		}
	})

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unhealthy with the database stopped", func() bool { return !p.Healthy() && !strict.Healthy() })
	mustView(t, p, func(tx Tx) error {
		if got := tx.Bucket([]byte("users")).Get([]byte("alice")); string(got) != "1" {
			t.Errorf("the mirror reads %q while the database is down", got)
		}
		return nil
	})
	if err := p.View(func(tx Tx) error { tx.Bucket([]byte("events")).Get([]byte("alice")); return nil }); err == nil {
		t.Error("a View of an uncached bucket succeeded with the database down")
	}
	if err := strict.View(func(tx Tx) error { tx.Bucket([]byte("users")); return nil }); err == nil {
		t.Error("a View past MaxStale succeeded with the database down")
	}
	if err := p.Update(func(tx Tx) error { tx.Bucket([]byte("users")); return nil }); err == nil {
		t.Error("an Update succeeded with the database down")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resynced:
	case <-time.After(time.Minute): // reconnection backs off up to 30 s
		t.Fatal("the watcher did not hear of the reconnection")
	}
	// A write by another node after the restart reaches p's mirror.
	mustUpdate(t, strict, func(tx Tx) error { return tx.Bucket([]byte("users")).Put([]byte("bob"), []byte("2")) })
	eventually(t, "the mirror has bob", func() bool {
		var got []byte
		mustView(t, p, func(tx Tx) error { got = tx.Bucket([]byte("users")).Get([]byte("bob")); return nil })
		return string(got) == "2"
	})
	eventually(t, "healthy again", p.Healthy)
	out := logs.String()
	if strings.Contains(out, "sekrit") || strings.Contains(out, "postgres://") {
		t.Errorf("the DSN reached the log:\n%s", out)
	}
	if strings.Count(out, "unreachable") != 1 || strings.Count(out, "reachable again") != 1 {
		t.Errorf("the outage is not logged once down and once up:\n%s", out)
	}
}

// TestPostgresUpdateRetriesADeadlock: two Updates that take two buckets'
// locks in opposite orders deadlock; PostgreSQL cancels one, which Update
// runs again, so both succeed.
func TestPostgresUpdateRetriesADeadlock(t *testing.T) {
	p := openPostgres(t, pgtest.Shared(t).NewDatabase(t), "a", time.Hour)
	mustUpdate(t, p, func(tx Tx) error {
		for _, n := range []string{"x", "y"} {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	})
	var bothLocked sync.WaitGroup
	bothLocked.Add(2)
	var attempts atomic.Int64
	update := func(first, second string) error {
		var once sync.Once
		return p.Update(func(tx Tx) error {
			attempts.Add(1)
			if err := tx.Bucket([]byte(first)).Put([]byte("k"), []byte(first)); err != nil {
				return err
			}
			once.Do(func() { bothLocked.Done(); bothLocked.Wait() })
			return tx.Bucket([]byte(second)).Put([]byte("k"), []byte(first))
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
	if n := attempts.Load(); n < 3 {
		t.Errorf("%d attempts: the deadlock was not retried", n)
	}
}
