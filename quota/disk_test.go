package quota

import (
	"bytes"
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

// Tests of the on-disk layout: one key per user and hour.

// snapshot returns every key and value in the quota bucket.
func snapshot(t *testing.T, tx *bbolt.Tx) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := tx.Bucket(bucketName).ForEach(func(k, v []byte) error {
		if v == nil {
			t.Errorf("nested bucket %q in the quota bucket", k)
			return nil
		}
		out[string(k)] = bytes.Clone(v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bytesWritten runs write in a transaction and returns the bytes of the
// values it changed or added and of their keys' hours (the login, which
// differs between users, left out), and how many entries it changed.
func bytesWritten(t *testing.T, db *bbolt.DB, write func(*bbolt.Tx) error) (size, entries int) {
	t.Helper()
	err := db.Update(func(tx *bbolt.Tx) error {
		before := snapshot(t, tx)
		if err := write(tx); err != nil {
			return err
		}
		for k, v := range snapshot(t, tx) {
			if old, ok := before[k]; !ok || !bytes.Equal(old, v) {
				size += hourKeyLen + len(v)
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

	// busy has sent in each of the 1439 minutes before now: 24 hours.
	holdEveryMinute(t, s, clock, "busy@example.com", now.Add(-1439*time.Minute), now.Add(-time.Minute), 5)
	if got := len(onDisk(t, db, "busy@example.com")); got != 1439 {
		t.Fatalf("busy has %d minutes on disk, want 1439", got)
	}
	if got := len(hourKeys(t, db, "busy@example.com")); got != 24 {
		t.Fatalf("busy has %d hour keys, want 24", got)
	}
	// Disk counting more than memory in every minute (as after
	// transactions that failed) makes a write of anything but the one
	// hour show as a change.
	err := db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketName)
		for _, k := range hourKeys(t, db, "busy@example.com") {
			v := bytes.Clone(b.Get(k))
			for i := 1; i < len(v); i += 4 {
				v[i+3]++
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Each write changes one key, of one size: the first of an hour adds
	// it, the next rewrite it.
	const want = hourKeyLen + hourValueLen
	for _, tm := range []time.Time{now, now.Add(time.Minute)} {
		clock.Set(tm)
		for _, user := range []string{"fresh@example.com", "busy@example.com"} {
			r, err := s.Hold(user, lim, 3)
			if err != nil {
				t.Fatal(err)
			}
			if size, entries := bytesWritten(t, db, r.Write); size != want || entries != 1 {
				t.Errorf("Write for %s at %s changed %d entries of %d bytes, want 1 of %d",
					user, tm.Format(time.TimeOnly), entries, size, want)
			}
		}
	}

	// A release writes the one hour too.
	r := mustReserve(t, s, "busy@example.com", lim, 2)
	size, entries := bytesWritten(t, db, func(tx *bbolt.Tx) error {
		s.mu.Lock()
		s.take(r.User, r.st.minute, r.N)
		s.mu.Unlock()
		return s.write(tx, r.User, r.st.minute)
	})
	if size != want || entries != 1 {
		t.Errorf("a release changed %d entries of %d bytes, want 1 of %d", entries, size, want)
	}
}

// hourKeys returns user's keys, oldest hour first.
func hourKeys(t *testing.T, db *bbolt.DB, user string) [][]byte {
	t.Helper()
	var keys [][]byte
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketName).ForEach(func(k, _ []byte) error {
			if _, u, err := keyHour(k); err == nil && u == user {
				keys = append(keys, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
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

	// On disk: hour keys, no version 1 record left.
	want := []bucket{{m(-1, 10, 1), 2}, {m(0, 9, 30), 3}, {m(0, 9, 59), 1}}
	if got := onDisk(t, db, "alice@example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("alice on disk = %+v, want %+v", got, want)
	}
	if keys := hourKeys(t, db, "alice@example.com"); len(keys) != 2 {
		t.Errorf("alice has %d hour keys, want 2 (yesterday 10:00, today 09:00)", len(keys))
	}
	if users := diskUsers(t, db); !reflect.DeepEqual(users, []string{"alice@example.com", "carol"}) {
		t.Errorf("quota bucket holds hours of %q, want alice and carol", users)
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
	hour := hourOf(unixMinute(at(0, 10, 0, 0)))
	good := [hourMinutes]uint32{0: 1}
	for name, v := range map[string][]byte{
		"short":           hourValue(&good)[:hourValueLen-1],
		"unknown version": append([]byte{hourFormat + 1}, hourValue(&good)[1:]...),
		"all zero":        append([]byte{hourFormat}, make([]byte, hourValueLen-1)...),
		"count too large": append(hourValue(&good)[:hourValueLen-4], 0x80, 0, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			clock := newClock(at(0, 10, 0, 0))
			s, db, path := newStore(t, clock)
			mustReserve(t, s, "alice", Limits{PerHour: 5, PerDay: 5}, 1)
			err := db.Update(func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketName).Put(hourKey(hour, "mallory"), v)
			})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			if _, err := Open(openDB(t, path), clock.Now); err == nil || !strings.Contains(err.Error(), `"mallory"`) {
				t.Errorf("Open = %v, want an error naming the user", err)
			}
		})
	}
}

func TestHourValueRoundTrip(t *testing.T) {
	hour := hourOf(unixMinute(at(0, 10, 0, 0)))
	first := hour * hourMinutes
	w := &window{b: []bucket{{first - 1, 9}, {first, 1}, {first + 30, 70000}, {first + 59, 3}, {first + 60, 4}}}
	counts := w.hourCounts(hour, first-hourMinutes)
	v := hourValue(&counts)
	if len(v) != hourValueLen {
		t.Fatalf("value of %d bytes, want %d", len(v), hourValueLen)
	}
	got := &window{}
	if err := readHour(got, hour, v); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.b, w.b[1:4]) {
		t.Errorf("round trip = %+v, want %+v", got.b, w.b[1:4])
	}
	// Minutes at or before the cutoff are left out; none left, no value.
	counts = w.hourCounts(hour, first+30)
	if got := (&window{}); readHour(got, hour, hourValue(&counts)) != nil || !reflect.DeepEqual(got.b, w.b[3:4]) {
		t.Errorf("after cutoff: %+v, want %+v", got.b, w.b[3:4])
	}
	counts = w.hourCounts(hour, first+59)
	if v := hourValue(&counts); v != nil {
		t.Errorf("value of an expired hour = %x, want nil", v)
	}
	// Hours before 1970 (a broken clock) are floored like minutes.
	for _, tc := range []struct{ minute, hour int64 }{{-1, -1}, {-60, -1}, {-61, -2}, {0, 0}, {59, 0}, {60, 1}} {
		if got := hourOf(tc.minute); got != tc.hour {
			t.Errorf("hourOf(%d) = %d, want %d", tc.minute, got, tc.hour)
		}
	}
}

func TestOpenDeletesExpiredHours(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, path := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	mustReserve(t, s, "alice", lim, 1) // day 0 10:00
	mustReserve(t, s, "bob", lim, 1)   // day 0 10:00
	clock.Set(at(0, 12, 0, 0))
	mustReserve(t, s, "carol", lim, 4) // day 0 12:00
	clock.Set(at(0, 12, 30, 0))
	mustReserve(t, s, "carol", lim, 5) // day 0 12:30
	clock.Set(at(0, 16, 0, 0))
	mustReserve(t, s, "alice", lim, 2) // day 0 16:00
	clock.Set(at(1, 9, 0, 0))
	mustReserve(t, s, "alice", lim, 3) // day 1 09:00
	db.Close()

	// At day 1 12:00 the hour of 10:00 has expired; carol's 12:00 has
	// too, but not her 12:30, so that hour's key stays.
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
	if users := diskUsers(t, db); !reflect.DeepEqual(users, []string{"alice", "carol"}) {
		t.Errorf("quota bucket holds hours of %q, want alice and carol", users)
	}
	if n := len(diskKeys(t, db)); n != 3 {
		t.Errorf("%d hour keys on disk, want 3", n)
	}
	if u := s.Usage("alice", lim); u.LastDay != 5 {
		t.Errorf("alice's day = %d, want 5", u.LastDay)
	}
	if u := s.Usage("carol", lim); u.LastDay != 5 {
		t.Errorf("carol's day = %d, want the 5 of 12:30", u.LastDay)
	}
}

// A running server deletes expired hours as users keep writing, a few per
// write, whoever's they are, so that disk stays near one day per user
// without any write growing.
func TestWritesDeleteAFewExpiredHours(t *testing.T) {
	clock := newClock(at(0, 0, 0, 0))
	s, db, _ := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	for h := range 10 {
		clock.Set(at(0, h, 0, 0))
		mustReserve(t, s, "alice", lim, 1)
		if h < 3 {
			mustReserve(t, s, "bob", lim, 1) // who then stops sending
		}
	}
	if n := len(diskKeys(t, db)); n != 13 {
		t.Fatalf("%d hour keys, want 13", n)
	}

	// A day and a half later all 13 have expired. Each write of alice's
	// deletes the two oldest, bob's as well as her own.
	for i := range 7 {
		clock.Set(at(1, 22, i, 0))
		mustReserve(t, s, "alice", lim, 1)
		if got, want := len(diskKeys(t, db)), 1+max(13-2*(i+1), 0); got != want {
			t.Errorf("after write %d: %d hour keys, want %d", i+1, got, want)
		}
		if i == 2 && len(hourKeys(t, db, "bob")) != 0 {
			t.Errorf("after write %d: bob's hours are still there", i+1)
		}
	}
}

// Many sessions of a few users hold, write in group commits (some of
// which fail, so that DB.Batch runs the other Writes again) and release,
// while the clock moves across minutes. Afterwards disk agrees
// with memory exactly, and no user was allowed past its limit.
func TestConcurrentWritesReopenToTheSameCounts(t *testing.T) {
	clock := newClock(at(0, 10, 58, 0))
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
				// minutes across an hour: each minute gets holds of
				// several sessions, each hour key writes of many.
				clock.Set(at(0, 10, 58+(i+j)%5, 0))
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
