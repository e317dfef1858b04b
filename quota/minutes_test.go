package quota

import (
	"encoding/binary"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// writeMinutes creates a bbolt file at path in the per-minute layout, as
// the package wrote it in commit aa36f44: a nested bucket per user, one
// key per minute.
func writeMinutes(t *testing.T, path string, users map[string][]bucket) {
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
		for user, buckets := range users {
			ub, err := b.CreateBucket([]byte(user))
			if err != nil {
				return err
			}
			for _, bk := range buckets {
				key := binary.BigEndian.AppendUint64(nil, uint64(bk.minute)^(1<<63))
				if err := ub.Put(key, binary.BigEndian.AppendUint32(nil, uint32(bk.n))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenMigratesPerMinuteLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbound.db")
	m := func(days, hh, mm int) int64 { return unixMinute(at(days, hh, mm, 0)) }
	writeMinutes(t, path, map[string][]bucket{
		// Yesterday 09:00 has expired by today 10:00; the rest counts.
		"alice@example.com": {{m(-1, 9, 0), 6}, {m(-1, 10, 1), 2}, {m(0, 9, 30), 3}, {m(0, 9, 59), 1}, {m(0, 10, 0), 4}},
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
	if u := s.Usage("alice@example.com", lim); u.LastHour != 8 || u.LastDay != 10 {
		t.Errorf("alice after migration: %d/hour %d/day, want 8 and 10", u.LastHour, u.LastDay)
	}
	if u := s.Usage("carol", lim); u.LastHour != 2 || u.LastDay != 2 {
		t.Errorf("carol after migration: %d/hour %d/day, want 2 and 2", u.LastHour, u.LastDay)
	}
	if got, want := s.Users(), []string{"alice@example.com", "carol"}; !reflect.DeepEqual(got, want) {
		t.Errorf("users = %q, want %q", got, want)
	}

	// On disk: hour keys only (snapshot reports nested buckets).
	want := []bucket{{m(-1, 10, 1), 2}, {m(0, 9, 30), 3}, {m(0, 9, 59), 1}, {m(0, 10, 0), 4}}
	if got := onDisk(t, db, "alice@example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("alice on disk = %+v, want %+v", got, want)
	}
	if keys := hourKeys(t, db, "alice@example.com"); len(keys) != 3 {
		t.Errorf("alice has %d hour keys, want 3", len(keys))
	}
	if users := diskUsers(t, db); !reflect.DeepEqual(users, []string{"alice@example.com", "carol"}) {
		t.Errorf("quota bucket holds hours of %q, want alice and carol", users)
	}
	if err := db.View(func(tx *bbolt.Tx) error { snapshot(t, tx); return nil }); err != nil {
		t.Fatal(err)
	}

	// Writes go on in the hour layout, and the next Open reads them.
	mustReserve(t, s, "alice@example.com", lim, 1)
	db.Close()
	s, err = Open(openDB(t, path), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice@example.com", lim); u.LastHour != 9 || u.LastDay != 11 {
		t.Errorf("alice after reopen: %d/hour %d/day, want 9 and 11", u.LastHour, u.LastDay)
	}
}

// A damaged minute fails Open and converts nothing.
func TestPerMinuteMigrationIsAllOrNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbound.db")
	now := unixMinute(at(0, 10, 0, 0))
	writeMinutes(t, path, map[string][]bucket{
		"alice":   {{now, 2}},
		"mallory": {{now - 1, 1}, {now, 0}}, // a count of 0 is never written
	})
	db := openDB(t, path)
	if _, err := Open(db, newClock(at(0, 10, 0, 0)).Now); err == nil || !strings.Contains(err.Error(), `"mallory"`) {
		t.Fatalf("Open = %v, want an error naming mallory", err)
	}
	err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketName)
		for _, user := range []string{"alice", "mallory"} {
			if b.Bucket([]byte(user)) == nil {
				t.Errorf("bucket of %s is gone after the failed Open", user)
			}
		}
		return b.ForEach(func(k, v []byte) error {
			if v != nil {
				t.Errorf("plain key %x after the failed Open", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
