package quota

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// Tests of the on-disk layout: one key per user and minute.

// snapshot returns every count on disk, keyed by user and minute key.
func snapshot(t *testing.T, tx *bbolt.Tx) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	b := tx.Bucket(bucketName)
	err := b.ForEach(func(user, v []byte) error {
		if v != nil {
			t.Errorf("plain key %q in the quota bucket", user)
			return nil
		}
		return b.Bucket(user).ForEach(func(k, v []byte) error {
			out[string(user)+"\x00"+string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bytesWritten runs write in a transaction and returns the bytes of the
// keys and values it changed or added, and how many entries it changed.
func bytesWritten(t *testing.T, db *bbolt.DB, write func(*bbolt.Tx) error) (size, entries int) {
	t.Helper()
	err := db.Update(func(tx *bbolt.Tx) error {
		before := snapshot(t, tx)
		if err := write(tx); err != nil {
			return err
		}
		for k, v := range snapshot(t, tx) {
			if old, ok := before[k]; !ok || string(old) != string(v) {
				size += len(k) - strings.IndexByte(k, 0) - 1 + len(v)
				entries++
			}
			delete(before, k)
		}
		entries += len(before) // deleted
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return size, entries
}

// holdEveryMinute holds n for user in each of the minutes from first to
// last, moving clock, and writes them all in one transaction.
func holdEveryMinute(t *testing.T, s *Store, clock *fakeClock, user string, first, last time.Time, n int) {
	t.Helper()
	lim := Limits{PerHour: 1 << 20, PerDay: 1 << 20}
	var rs []Reservation
	for tm := first; !tm.After(last); tm = tm.Add(time.Minute) {
		clock.Set(tm)
		r, err := s.Hold(user, lim, n)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for _, r := range rs {
			if err := r.Write(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriteSizeDoesNotGrowWithHistory(t *testing.T) {
	now := at(1, 10, 0, 0)
	clock := newClock(now)
	s, db, _ := newStore(t, clock)
	lim := Limits{PerHour: 1 << 20, PerDay: 1 << 20}

	// busy has sent in each of the 1439 minutes before now.
	holdEveryMinute(t, s, clock, "busy@example.com", now.Add(-1439*time.Minute), now.Add(-time.Minute), 5)
	if got := len(onDisk(t, db, "busy@example.com")); got != 1439 {
		t.Fatalf("busy has %d minutes on disk, want 1439", got)
	}
	// Disk counting more than memory for every one of them (as after
	// transactions that failed) makes a write of anything but the one
	// minute show as a change.
	err := db.Update(func(tx *bbolt.Tx) error {
		ub := tx.Bucket(bucketName).Bucket([]byte("busy@example.com"))
		for _, b := range onDiskTx(t, ub) {
			if err := ub.Put(minuteKey(b.minute), countValue(b.n+1)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	clock.Set(now)
	sizes := map[string]int{}
	for _, user := range []string{"fresh@example.com", "busy@example.com"} {
		r, err := s.Hold(user, lim, 3)
		if err != nil {
			t.Fatal(err)
		}
		size, entries := bytesWritten(t, db, r.Write)
		if entries != 1 {
			t.Errorf("Write for %s changed %d entries, want 1", user, entries)
		}
		sizes[user] = size
	}
	if sizes["busy@example.com"] != sizes["fresh@example.com"] || sizes["fresh@example.com"] == 0 {
		t.Errorf("bytes written: fresh user %d, user with a full day %d; want the same, not 0",
			sizes["fresh@example.com"], sizes["busy@example.com"])
	}

	// A release writes the one minute too.
	r := mustReserve(t, s, "busy@example.com", lim, 2)
	var releaseEntries int
	_, releaseEntries = bytesWritten(t, db, func(tx *bbolt.Tx) error {
		s.mu.Lock()
		s.take(r.User, r.st.minute, r.N)
		s.mu.Unlock()
		return s.write(tx, r.User, r.st.minute)
	})
	if releaseEntries != 1 {
		t.Errorf("a release changed %d entries, want 1", releaseEntries)
	}
}

func onDiskTx(t *testing.T, ub *bbolt.Bucket) []bucket {
	t.Helper()
	w, err := readUser(ub)
	if err != nil {
		t.Fatal(err)
	}
	return w.b
}

// usageOf is everything the Store reports about users.
func usageOf(s *Store, users []string, lim Limits) map[string]any {
	out := map[string]any{"users": s.Users()}
	for _, u := range users {
		out[u] = s.Usage(u, lim)
		out[u+" hourly"] = s.Hourly(u)
	}
	return out
}

func TestReopenGivesTheSameUsage(t *testing.T) {
	clock := newClock(at(0, 9, 0, 0))
	s, db, path := newStore(t, clock)
	lim := Limits{PerHour: 20, PerDay: 100}
	users := []string{"alice@example.com", "bob", "carol", "nobody"}

	mustReserve(t, s, "alice@example.com", lim, 4)
	clock.Set(at(0, 9, 0, 40))
	mustReserve(t, s, "alice@example.com", lim, 1) // same minute
	clock.Set(at(0, 14, 30, 0))
	mustReserve(t, s, "bob", lim, 7)
	r := mustReserve(t, s, "alice@example.com", lim, 2)
	clock.Set(at(0, 23, 59, 0))
	mustReserve(t, s, "carol", lim, 20)
	if err := s.Release(r); err != nil {
		t.Fatal(err)
	}
	clock.Set(at(1, 8, 0, 0))
	mustReserve(t, s, "alice@example.com", lim, 3)
	mustReserve(t, s, "carol", lim, 1)
	// A hold whose message failed to queue, given back.
	held, err := s.Hold("bob", lim, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(held); err != nil {
		t.Fatal(err)
	}

	clock.Set(at(1, 8, 30, 0))
	want := usageOf(s, users, lim)
	db.Close()
	reopened, err := Open(openDB(t, path), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got := usageOf(reopened, users, lim); !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen:\n%v\nwant\n%v", got, want)
	}
	// And both keep sliding alike: at 09:00:30 alice's 09:00 minute of
	// yesterday has left the day.
	clock.Set(at(1, 9, 0, 30))
	if got, want := usageOf(reopened, users, lim), usageOf(s, users, lim); !reflect.DeepEqual(got, want) {
		t.Errorf("half an hour after reopen:\n%v\nwant\n%v", got, want)
	}
	if u := reopened.Usage("alice@example.com", lim); u.LastDay != 3 {
		t.Errorf("alice's day after 09:00 = %d, want 3", u.LastDay)
	}
}

// writeV1 creates a bbolt file at path holding version 1 records, as the
// package wrote them before the minute keys.
func writeV1(t *testing.T, path string, records map[string][]bucket) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketName)
		if err != nil {
			return err
		}
		for user, buckets := range records {
			w := &window{b: buckets}
			if err := b.Put([]byte(user), w.encode(buckets[0].minute-1)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenMigratesVersion1Records(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbound.db")
	m := func(days, hh, mm int) int64 { return unixMinute(at(days, hh, mm, 0)) }
	writeV1(t, path, map[string][]bucket{
		// Yesterday 09:00 has expired by today 10:00; the rest counts.
		"alice@example.com": {{m(-1, 9, 0), 6}, {m(-1, 10, 1), 2}, {m(0, 9, 30), 3}, {m(0, 9, 59), 1}},
		"bob":               {{m(-2, 12, 0), 9}}, // all expired
		"carol":             {{m(0, 10, 0), 2}},
	})

	clock := newClock(at(0, 10, 0, 30))
	lim := Limits{PerHour: 10, PerDay: 100}
	db := openDB(t, path)
	s, err := Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice@example.com", lim); u.LastHour != 4 || u.LastDay != 6 {
		t.Errorf("alice after migration: %d/hour %d/day, want 4 and 6", u.LastHour, u.LastDay)
	}
	if u := s.Usage("carol", lim); u.LastHour != 2 || u.LastDay != 2 {
		t.Errorf("carol after migration: %d/hour %d/day, want 2 and 2", u.LastHour, u.LastDay)
	}
	if got, want := s.Users(), []string{"alice@example.com", "carol"}; !reflect.DeepEqual(got, want) {
		t.Errorf("users = %q, want %q", got, want)
	}

	// On disk: minute keys in user buckets, no version 1 record left.
	want := []bucket{{m(-1, 10, 1), 2}, {m(0, 9, 30), 3}, {m(0, 9, 59), 1}}
	if got := onDisk(t, db, "alice@example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("alice on disk = %+v, want %+v", got, want)
	}
	if keys := diskKeys(t, db); !reflect.DeepEqual(keys, []string{"alice@example.com", "carol"}) {
		t.Errorf("quota bucket holds %q, want the buckets of alice and carol", keys)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		snapshot(t, tx) // reports plain keys
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Writes go on in the new layout, and the next Open reads them.
	mustReserve(t, s, "alice@example.com", lim, 1)
	db.Close()
	s, err = Open(openDB(t, path), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice@example.com", lim); u.LastHour != 5 || u.LastDay != 7 {
		t.Errorf("alice after reopen: %d/hour %d/day, want 5 and 7", u.LastHour, u.LastDay)
	}
}

// A damaged version 1 record fails Open and converts nothing: the data
// directory is converted whole or not at all.
func TestMigrationIsAllOrNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbound.db")
	now := unixMinute(at(0, 10, 0, 0))
	writeV1(t, path, map[string][]bucket{"alice": {{now, 2}}, "bob": {{now, 3}}})
	db := openDB(t, path)
	err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketName).Put([]byte("mallory"), []byte{formatVersion, 0x80})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db, newClock(at(0, 10, 0, 0)).Now); err == nil || !strings.Contains(err.Error(), `"mallory"`) {
		t.Fatalf("Open = %v, want an error naming mallory", err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketName)
		for _, user := range []string{"alice", "bob", "mallory"} {
			if v := b.Get([]byte(user)); v == nil || v[0] != formatVersion {
				t.Errorf("record of %s after the failed Open = %x, want it untouched", user, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsCorruptCount(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, path := newStore(t, clock)
	mustReserve(t, s, "mallory", Limits{PerHour: 5, PerDay: 5}, 1)
	err := db.Update(func(tx *bbolt.Tx) error {
		ub := tx.Bucket(bucketName).Bucket([]byte("mallory"))
		return ub.Put(minuteKey(unixMinute(clock.Now())), []byte{0, 0, 0, 0})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(openDB(t, path), clock.Now); err == nil || !strings.Contains(err.Error(), `"mallory"`) {
		t.Errorf("Open = %v, want an error naming the user", err)
	}
}

func TestOpenDeletesExpiredMinutes(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, path := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	mustReserve(t, s, "alice", lim, 1) // day 0 10:00
	mustReserve(t, s, "bob", lim, 1)   // day 0 10:00
	clock.Set(at(0, 16, 0, 0))
	mustReserve(t, s, "alice", lim, 2) // day 0 16:00
	clock.Set(at(1, 9, 0, 0))
	mustReserve(t, s, "alice", lim, 3) // day 1 09:00
	db.Close()

	// At day 1 12:00 the 10:00 minutes have expired.
	clock.Set(at(1, 12, 0, 0))
	db = openDB(t, path)
	s, err := Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	want := []bucket{{unixMinute(at(0, 16, 0, 0)), 2}, {unixMinute(at(1, 9, 0, 0)), 3}}
	if got := onDisk(t, db, "alice"); !reflect.DeepEqual(got, want) {
		t.Errorf("alice on disk = %+v, want %+v", got, want)
	}
	if keys := diskKeys(t, db); !reflect.DeepEqual(keys, []string{"alice"}) {
		t.Errorf("quota bucket holds %q, want alice's only", keys)
	}
	if u := s.Usage("alice", lim); u.LastDay != 5 {
		t.Errorf("alice's day = %d, want 5", u.LastDay)
	}
}

// A running server deletes a user's expired minutes as the user keeps
// writing, a few per write, so that disk stays near one day per user
// without any write growing.
func TestWritesDeleteAFewExpiredMinutes(t *testing.T) {
	start := at(0, 10, 0, 0)
	clock := newClock(start)
	s, db, _ := newStore(t, clock)
	holdEveryMinute(t, s, clock, "alice", start, start.Add(9*time.Minute), 1)

	// A day and a half later all ten have expired. Each write deletes two.
	lim := Limits{PerHour: 50, PerDay: 500}
	clock.Set(at(1, 22, 0, 0))
	for i, want := range []int{1 + 8, 2 + 6, 3 + 4} {
		clock.Set(at(1, 22, i, 0))
		mustReserve(t, s, "alice", lim, 1)
		if got := len(onDisk(t, db, "alice")); got != want {
			t.Errorf("after write %d: %d minutes on disk, want %d", i+1, got, want)
		}
	}
}

// Many sessions of a few users hold, write in group commits (some of
// which fail, so that DB.Batch runs the other Writes again) and release,
// while the clock moves across minutes. Afterwards disk agrees
// with memory exactly, and no user was allowed past its limit.
func TestConcurrentWritesReopenToTheSameCounts(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, path := newStore(t, clock)
	lim := Limits{PerHour: 60, PerDay: 1000}
	users := []string{"alice", "bob", "carol"}
	errQueue := errors.New("queue write failed")

	var wg sync.WaitGroup
	var accepted [3]atomic.Int64
	for i := range 24 {
		wg.Go(func() {
			u := i % len(users)
			for j := range 10 {
				// Sessions move the clock back and forth over five
				// minutes: each minute gets holds of several sessions.
				clock.Set(at(0, 10, (i+j)%5, 0))
				r, err := s.Hold(users[u], lim, 1+j%3)
				if errors.As(err, new(*ExceededError)) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				fail := (i+j)%4 == 0
				err = db.Batch(func(tx *bbolt.Tx) error {
					if err := r.Write(tx); err != nil {
						return err
					}
					if fail {
						return errQueue
					}
					return nil
				})
				switch {
				case err == nil:
					accepted[u].Add(int64(r.N))
					if j%5 == 4 { // given back later, as by an admin
						accepted[u].Add(-int64(r.N))
						err = s.Release(r)
					}
				case errors.Is(err, errQueue):
					err = s.Release(r)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	want := usageOf(s, users, lim)
	for u, user := range users {
		got := s.Usage(user, lim)
		if int64(got.LastHour) != accepted[u].Load() || got.LastHour > lim.PerHour {
			t.Errorf("%s: usage %d, sessions kept %d, limit %d", user, got.LastHour, accepted[u].Load(), lim.PerHour)
		}
	}
	db.Close()
	reopened, err := Open(openDB(t, path), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got := usageOf(reopened, users, lim); !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen:\n%v\nwant\n%v", got, want)
	}
}
