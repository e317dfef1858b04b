package quota

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// fakeClock is a settable Clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// at returns 2026-03-02 hh:mm:ss UTC, plus days.
func at(days, hh, mm, ss int) time.Time {
	return time.Date(2026, 3, 2+days, hh, mm, ss, 0, time.UTC)
}

// openDB opens a bbolt file at path, closing it when the test ends.
func openDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newStore opens a Store on a fresh bbolt file in a temp dir.
func newStore(t testing.TB, clock *fakeClock) (*Store, *bbolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbound.db")
	db := openDB(t, path)
	s, err := Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s, db, path
}

// reserve does what the relay does with a message: Hold, then write the
// count in a transaction (the relay's also stores the message), and
// Release when that transaction fails.
func reserve(s *Store, user string, lim Limits, n int) (Reservation, error) {
	r, err := s.Hold(user, lim, n)
	if err != nil {
		return r, err
	}
	if err := s.db.Update(r.Write); err != nil {
		s.Release(r)
		return Reservation{}, err
	}
	return r, nil
}

func mustReserve(t *testing.T, s *Store, user string, lim Limits, n int) Reservation {
	t.Helper()
	r, err := reserve(s, user, lim, n)
	if err != nil {
		t.Fatalf("Hold(%q, %+v, %d) at %s: %v", user, lim, n, s.now().Format(time.TimeOnly), err)
	}
	return r
}

// mustExceed asserts that holding n is refused in window, with the given
// wait, and that nothing was counted.
func mustExceed(t *testing.T, s *Store, user string, lim Limits, n int, window string, retryIn time.Duration) {
	t.Helper()
	before := s.Usage(user, lim)
	_, err := s.Hold(user, lim, n)
	var e *ExceededError
	if !errors.As(err, &e) {
		t.Fatalf("Hold(%q, %d) at %s = %v, want *ExceededError", user, n, s.now().Format(time.TimeOnly), err)
	}
	if e.Window != window || e.RetryIn != retryIn {
		t.Fatalf("Hold(%q, %d) at %s refused in %s window, retry in %s; want %s, %s",
			user, n, s.now().Format(time.TimeOnly), e.Window, e.RetryIn, window, retryIn)
	}
	if after := s.Usage(user, lim); after != before {
		t.Fatalf("refused Hold changed usage: %+v → %+v", before, after)
	}
}

func TestHourWindowSlides(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 3, PerDay: 100}

	mustReserve(t, s, "alice", lim, 1)
	clock.Set(at(0, 10, 5, 0))
	mustReserve(t, s, "alice", lim, 2)

	// At the limit until the 10:00 send is an hour old.
	clock.Set(at(0, 10, 30, 0))
	mustExceed(t, s, "alice", lim, 1, Hourly, 30*time.Minute)
	clock.Set(at(0, 10, 59, 59))
	mustExceed(t, s, "alice", lim, 1, Hourly, time.Second)

	// 11:00 frees the 10:00 slot only: the 10:05 sends still count.
	clock.Set(at(0, 11, 0, 30))
	mustReserve(t, s, "alice", lim, 1)
	mustExceed(t, s, "alice", lim, 1, Hourly, 4*time.Minute+30*time.Second)

	clock.Set(at(0, 11, 5, 0))
	mustReserve(t, s, "alice", lim, 2)
	if u := s.Usage("alice", lim); u.LastHour != 3 || u.LastDay != 6 {
		t.Errorf("usage at 11:05 = %d/hour %d/day, want 3 and 6", u.LastHour, u.LastDay)
	}
}

func TestDayWindowSlides(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 100, PerDay: 3}

	mustReserve(t, s, "alice", lim, 1)
	clock.Set(at(0, 14, 0, 0))
	mustReserve(t, s, "alice", lim, 2)

	clock.Set(at(0, 23, 0, 0))
	mustExceed(t, s, "alice", lim, 1, Daily, 11*time.Hour)
	clock.Set(at(1, 9, 59, 0))
	mustExceed(t, s, "alice", lim, 1, Daily, time.Minute)

	// The next day at 10:00 the first send frees; the 14:00 ones do not.
	clock.Set(at(1, 10, 0, 30))
	mustReserve(t, s, "alice", lim, 1)
	mustExceed(t, s, "alice", lim, 1, Daily, 3*time.Hour+59*time.Minute+30*time.Second)

	clock.Set(at(1, 14, 0, 0))
	mustReserve(t, s, "alice", lim, 2)
}

func TestBothWindowsFullReportsTheLaterSlot(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 2, PerDay: 2}

	mustReserve(t, s, "alice", lim, 2)
	clock.Set(at(0, 10, 30, 0))
	// The hour frees at 11:00 but the day only at 10:00 tomorrow.
	mustExceed(t, s, "alice", lim, 1, Daily, 23*time.Hour+30*time.Minute)
}

func TestExceededErrorNamesLimitAndNextSlot(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	mustReserve(t, s, "alice@example.com", lim, 50)

	clock.Set(at(0, 10, 48, 0))
	_, err := s.Hold("alice@example.com", lim, 1)
	want := "hourly limit of 50 reached for alice@example.com; next slot in"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
	if got := err.Error(); got != want+" 12m" {
		t.Errorf("error = %q, want %q", got, want+" 12m")
	}
	var e *ExceededError
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, want *ExceededError", err)
	}
	wantErr := ExceededError{User: "alice@example.com", Window: Hourly, Limit: 50, Requested: 1, RetryIn: 12 * time.Minute}
	if *e != wantErr || !e.Temporary() {
		t.Errorf("error = %+v (temporary %v), want %+v, temporary", *e, e.Temporary(), wantErr)
	}
}

func TestExceededErrorWhenWaitingCannotHelp(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)

	for _, tc := range []struct {
		name string
		lim  Limits
		n    int
		want string
	}{
		{"zero hourly limit", Limits{PerHour: 0, PerDay: 500}, 1, "hourly limit of 0 for alice@example.com allows no sending"},
		{"zero daily limit", Limits{PerHour: 50, PerDay: 0}, 1, "daily limit of 0 for alice@example.com allows no sending"},
		{"negative limit", Limits{PerHour: -1, PerDay: 500}, 1, "hourly limit of -1 for alice@example.com allows no sending"},
		{"more than the hour allows", Limits{PerHour: 50, PerDay: 500}, 60, "60 recipients exceed the hourly limit of 50 for alice@example.com"},
		{"more than the day allows", Limits{PerHour: 50, PerDay: 20}, 30, "30 recipients exceed the daily limit of 20 for alice@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Hold("alice@example.com", tc.lim, tc.n)
			var e *ExceededError
			if !errors.As(err, &e) {
				t.Fatalf("Hold = %v, want *ExceededError", err)
			}
			if e.Error() != tc.want || e.Temporary() || e.RetryIn != 0 {
				t.Errorf("error = %q (retry in %s), want %q, not temporary", e, e.RetryIn, tc.want)
			}
		})
	}
	if u := s.Usage("alice@example.com", Limits{PerHour: 50, PerDay: 500}); u.LastDay != 0 {
		t.Errorf("refused reservations counted %d", u.LastDay)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		40 * time.Second:                  "40s",
		500 * time.Millisecond:            "1s",
		59*time.Second + time.Millisecond: "1m",
		time.Minute:                       "1m",
		11*time.Minute + 30*time.Second:   "12m",
		12 * time.Minute:                  "12m",
		59*time.Minute + time.Second:      "1h00m",
		time.Hour + 5*time.Minute:         "1h05m",
		23*time.Hour + 59*time.Minute:     "23h59m",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestConcurrentHoldsNeverOversend(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, path := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}

	const sessions, attempts = 20, 10
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range sessions {
		wg.Go(func() {
			<-start
			for range attempts {
				_, err := reserve(s, "alice@example.com", lim, 1)
				var e *ExceededError
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.As(err, &e):
					refused.Add(1)
				default:
					t.Errorf("Hold and write: %v", err)
				}
			}
		})
	}
	close(start)
	wg.Wait()

	if accepted.Load() != 50 || refused.Load() != sessions*attempts-50 {
		t.Fatalf("accepted %d, refused %d; want exactly 50 accepted", accepted.Load(), refused.Load())
	}
	if u := s.Usage("alice@example.com", lim); u.LastHour != 50 {
		t.Errorf("usage counts %d, want 50", u.LastHour)
	}

	// What is on disk agrees, whatever order the writes ran in.
	db.Close()
	s2, err := Open(openDB(t, path), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if u := s2.Usage("alice@example.com", lim); u.LastHour != 50 {
		t.Errorf("after reopen usage counts %d, want 50", u.LastHour)
	}
}

func TestConcurrentHoldAndReleaseNeverOversends(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 7, PerDay: 500}

	// Sessions hold what they reserve, and every other one gives it back,
	// as a session does when the queue write fails. At no point may the
	// held reservations add up to more than the limit.
	var held atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 8 {
				r, err := reserve(s, "alice", lim, 1+i%3)
				if err != nil {
					continue
				}
				if h := held.Add(int64(r.N)); h > int64(lim.PerHour) {
					t.Errorf("%d recipients held against a limit of %d", h, lim.PerHour)
				}
				if i%2 == 0 {
					held.Add(-int64(r.N))
					if err := s.Release(r); err != nil {
						t.Errorf("Release: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	if u := s.Usage("alice", lim); int64(u.LastHour) != held.Load() {
		t.Errorf("usage counts %d, sessions hold %d", u.LastHour, held.Load())
	}
}

func TestCountersSurviveReopen(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, path := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	mustReserve(t, s, "alice", lim, 3)
	clock.Set(at(0, 10, 30, 0))
	mustReserve(t, s, "alice", lim, 4)
	mustReserve(t, s, "bob", lim, 2)
	db.Close()

	clock.Set(at(0, 10, 45, 0))
	db = openDB(t, path)
	s, err := Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice", lim); u.LastHour != 7 || u.LastDay != 7 {
		t.Errorf("alice after reopen: %d/hour %d/day, want 7 and 7", u.LastHour, u.LastDay)
	}
	if u := s.Usage("bob", lim); u.LastHour != 2 {
		t.Errorf("bob after reopen: %d/hour, want 2", u.LastHour)
	}
	// The reloaded minutes keep sliding out one by one.
	clock.Set(at(0, 11, 0, 0))
	if u := s.Usage("alice", lim); u.LastHour != 4 || u.LastDay != 7 {
		t.Errorf("alice at 11:00: %d/hour %d/day, want 4 and 7", u.LastHour, u.LastDay)
	}
	db.Close()

	// A day later the records have expired: Open deletes them.
	clock.Set(at(1, 10, 30, 0))
	db = openDB(t, path)
	s, err = Open(db, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if users := s.Users(); len(users) != 0 {
		t.Errorf("users a day later = %q, want none", users)
	}
	if keys := diskKeys(t, db); len(keys) != 0 {
		t.Errorf("keys left on disk: %q", keys)
	}
}

// diskKeys lists the keys in the quota bucket.
func diskKeys(t *testing.T, db *bbolt.DB) []string {
	t.Helper()
	var keys []string
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketName).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// onDisk returns the minute buckets stored for user, oldest first,
// whether expired or not.
func onDisk(t *testing.T, db *bbolt.DB, user string) []bucket {
	t.Helper()
	w := &window{}
	err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketName)
		for _, k := range hourKeys(t, db, user) {
			hour, _, _ := keyHour(k)
			if err := readHour(w, hour, b.Get(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.empty() {
		return nil
	}
	return w.b
}

// diskUsers lists, sorted, the users with hour keys.
func diskUsers(t *testing.T, db *bbolt.DB) []string {
	t.Helper()
	var users []string
	for _, k := range diskKeys(t, db) {
		_, user, err := keyHour([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, user)
	}
	slices.Sort(users)
	return slices.Compact(users)
}

// A hold is counted at once but written only in the caller's transaction,
// which is what makes it durable together with the message.
func TestHoldIsWrittenInTheCallersTransaction(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, _ := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	r, err := s.Hold("alice", lim, 3)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice", lim); u.LastHour != 3 {
		t.Errorf("usage after Hold = %d, want 3", u.LastHour)
	}
	if b := onDisk(t, db, "alice"); b != nil {
		t.Fatalf("Hold wrote %+v by itself", b)
	}
	if err := db.Update(r.Write); err != nil {
		t.Fatal(err)
	}
	want := []bucket{{minute: unixMinute(at(0, 10, 0, 0)), n: 3}}
	if b := onDisk(t, db, "alice"); !reflect.DeepEqual(b, want) {
		t.Errorf("on disk %+v, want %+v", b, want)
	}
}

func TestFailedTransactionCountsNothing(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, _ := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	r := mustReserve(t, s, "alice", lim, 2)

	// The message's transaction fails after the count was written into
	// it: Release gives the hold back, in memory and on disk.
	held, err := s.Hold("alice", lim, 3)
	if err != nil {
		t.Fatal(err)
	}
	diskFull := errors.New("disk full")
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := held.Write(tx); err != nil {
			return err
		}
		return diskFull
	})
	if err != diskFull {
		t.Fatalf("transaction = %v, want %v", err, diskFull)
	}
	if err := s.Release(held); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice", lim); u.LastHour != 2 {
		t.Errorf("usage after the release counts %d, want 2", u.LastHour)
	}
	if b := onDisk(t, db, "alice"); len(b) != 1 || b[0].n != 2 {
		t.Errorf("on disk %+v, want 2 recipients", b)
	}

	// A release that cannot be committed keeps the slots counted: memory
	// never counts less than disk.
	db.Close()
	if err := s.Release(r); err == nil {
		t.Fatal("Release on a closed database succeeded")
	}
	if u := s.Usage("alice", lim); u.LastHour != 2 {
		t.Errorf("usage counts %d, want 2", u.LastHour)
	}
}

func TestReleaseGivesBackTheSlot(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, db, _ := newStore(t, clock)
	lim := Limits{PerHour: 2, PerDay: 500}

	a := mustReserve(t, s, "alice", lim, 1)
	b := mustReserve(t, s, "alice", lim, 1)
	mustExceed(t, s, "alice", lim, 1, Hourly, time.Hour)

	clock.Set(at(0, 10, 20, 0))
	if err := s.Release(a); err != nil {
		t.Fatal(err)
	}
	c := mustReserve(t, s, "alice", lim, 1)

	// A second Release of a, or of a copy of it, must not free b's slot.
	if err := s.Release(a); err != nil {
		t.Fatal(err)
	}
	copied := a
	if err := s.Release(copied); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice", lim); u.LastHour != 2 {
		t.Errorf("usage after double release = %d, want 2", u.LastHour)
	}
	// The zero Reservation, from a refused Hold, releases nothing.
	if err := s.Release(Reservation{}); err != nil {
		t.Errorf("Release(zero) = %v", err)
	}

	// Releasing everything leaves no key behind.
	for _, r := range []Reservation{b, c} {
		if err := s.Release(r); err != nil {
			t.Fatal(err)
		}
	}
	if u := s.Usage("alice", lim); u.LastDay != 0 {
		t.Errorf("usage after releasing all = %d, want 0", u.LastDay)
	}
	if keys := diskKeys(t, db); len(keys) != 0 {
		t.Errorf("keys left on disk: %q", keys)
	}
}

func TestReleaseAfterTheDayIsOverGivesNothingBack(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 2, PerDay: 2}
	old := mustReserve(t, s, "alice", lim, 2)

	clock.Set(at(1, 10, 0, 0))
	mustReserve(t, s, "alice", lim, 2)
	if err := s.Release(old); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage("alice", lim); u.LastDay != 2 {
		t.Errorf("usage = %d, want the 2 of today", u.LastDay)
	}
}

func TestUsageReportsRemainingAndNextSlot(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 5, PerDay: 20}

	if got, want := s.Usage("alice", lim), (Usage{User: "alice", Limits: lim, RemainingHour: 5, RemainingDay: 20}); got != want {
		t.Errorf("usage of a new user = %+v, want %+v", got, want)
	}

	mustReserve(t, s, "alice", lim, 2)
	clock.Set(at(0, 10, 10, 0))
	mustReserve(t, s, "alice", lim, 2)
	want := Usage{User: "alice", LastHour: 4, LastDay: 4, Limits: lim, RemainingHour: 1, RemainingDay: 16}
	if got := s.Usage("alice", lim); got != want {
		t.Errorf("usage below the limit = %+v, want %+v", got, want)
	}

	mustReserve(t, s, "alice", lim, 1)
	clock.Set(at(0, 10, 20, 0))
	want = Usage{User: "alice", LastHour: 5, LastDay: 5, Limits: lim, RemainingHour: 0, RemainingDay: 15,
		NextSlot: at(0, 11, 0, 0)}
	if got := s.Usage("alice", lim); got != want {
		t.Errorf("usage at the limit = %+v, want %+v", got, want)
	}

	// Limits lowered below what was sent: remaining stays 0, and the next
	// slot is when enough has drained.
	low := Limits{PerHour: 2, PerDay: 20}
	if got := s.Usage("alice", low); got.RemainingHour != 0 || !got.NextSlot.Equal(at(0, 11, 10, 0)) {
		t.Errorf("usage over a lowered limit = %+v, want 0 remaining, next slot 11:10", got)
	}
	// A limit of 0 never frees a slot.
	if got := s.Usage("alice", Limits{PerHour: 0, PerDay: 20}); got.RemainingHour != 0 || !got.NextSlot.IsZero() {
		t.Errorf("usage with a zero limit = %+v, want 0 remaining, no next slot", got)
	}
}

func TestCheckDoesNotReserve(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 3, PerDay: 500}

	for range 10 {
		if err := s.Check("alice", lim, 0, 1); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	if u := s.Usage("alice", lim); u.LastDay != 0 {
		t.Fatalf("Check counted %d", u.LastDay)
	}
	if users := s.Users(); len(users) != 0 {
		t.Errorf("Check created users %q", users)
	}

	// Pending recipients of the same transaction count against the limit:
	// the fourth RCPT does not fit however long the client waits.
	if err := s.Check("alice", lim, 2, 1); err != nil {
		t.Errorf("third recipient: %v", err)
	}
	var e *ExceededError
	if err := s.Check("alice", lim, 3, 1); !errors.As(err, &e) || e.Requested != 4 || e.Temporary() {
		t.Errorf("fourth recipient: %v, want a non-temporary *ExceededError for 4", err)
	}

	// After a reservation Check sees it, and says when there is room.
	mustReserve(t, s, "alice", lim, 2)
	clock.Set(at(0, 10, 15, 0))
	if err := s.Check("alice", lim, 0, 1); err != nil {
		t.Errorf("Check with one slot left: %v", err)
	}
	if err := s.Check("alice", lim, 1, 1); !errors.As(err, &e) || e.RetryIn != 45*time.Minute {
		t.Errorf("Check over the limit = %v, want a retry in 45m", err)
	}
	if err := s.Check("alice", lim, -1, 1); err == nil || errors.As(err, &e) {
		t.Errorf("Check with negative pending = %v, want an argument error", err)
	}
}

func TestUsersAreIndependent(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	strict := Limits{PerHour: 2, PerDay: 2}
	own := Limits{PerHour: 50, PerDay: 500}

	mustReserve(t, s, "carol", strict, 2)
	mustExceed(t, s, "carol", strict, 1, Daily, 24*time.Hour)
	mustReserve(t, s, "alice@example.com", own, 50)
	mustReserve(t, s, "bob", strict, 1)

	if got, want := s.Users(), []string{"alice@example.com", "bob", "carol"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Users() = %q, want %q", got, want)
	}
	if u := s.Usage("bob", strict); u.LastHour != 1 || u.RemainingHour != 1 {
		t.Errorf("bob = %+v, want 1 used, 1 remaining", u)
	}

	clock.Set(at(1, 10, 0, 0))
	if got := s.Users(); len(got) != 0 {
		t.Errorf("Users() a day later = %q, want none", got)
	}
}

func TestClockSteppedBackStillCounts(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 2, PerDay: 500}
	mustReserve(t, s, "alice", lim, 1)

	clock.Set(at(0, 9, 50, 0))
	mustReserve(t, s, "alice", lim, 1)
	mustExceed(t, s, "alice", lim, 1, Hourly, time.Hour)
}

func TestHoldRefusesBadArguments(t *testing.T) {
	clock := newClock(at(0, 10, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 50, PerDay: 500}
	for _, tc := range []struct {
		user string
		n    int
	}{
		{"", 1},
		{"alice", 0},
		{"alice", -3},
		{strings.Repeat("a", maxUserLen+1), 1},
	} {
		if _, err := s.Hold(tc.user, lim, tc.n); err == nil || errors.As(err, new(*ExceededError)) {
			t.Errorf("Hold(%.10q, %d) = %v, want an argument error", tc.user, tc.n, err)
		}
	}
	if users := s.Users(); len(users) != 0 {
		t.Errorf("bad arguments created users %.20q", users)
	}
}

func TestOpenRejectsCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbound.db")
	db := openDB(t, path)
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		return b.Put([]byte("mallory"), []byte{formatVersion, 0x80})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(db, newClock(at(0, 10, 0, 0)).Now)
	if err == nil || !strings.Contains(err.Error(), `"mallory"`) {
		t.Errorf("Open = %v, want an error naming the user", err)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	now := unixMinute(at(0, 10, 0, 0))
	w := &window{b: []bucket{{now - 1439, 1}, {now - 60, 7}, {now - 59, 10000}, {now, 3}}}
	got, err := decode(w.encode(now - dayMinutes))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("round trip = %+v, want %+v", got, w)
	}
	// Encoding leaves out what has expired.
	got, err = decode(w.encode(now - 60))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.b, w.b[2:]) {
		t.Errorf("pruned round trip = %+v, want %+v", got.b, w.b[2:])
	}
	if v := w.encode(now); v != nil {
		t.Errorf("encode of nothing = %x, want nil", v)
	}
}

func FuzzDecode(f *testing.F) {
	now := unixMinute(at(0, 10, 0, 0))
	f.Add((&window{b: []bucket{{now - 1, 2}, {now, 3}}}).encode(0))
	f.Add((&window{b: []bucket{{-5, 1}}}).encode(-10))
	f.Add([]byte{formatVersion})
	f.Add([]byte{formatVersion, 0x80})
	f.Add([]byte{2, 0, 1})
	f.Fuzz(func(t *testing.T, v []byte) {
		w, err := decode(v)
		if err != nil {
			return
		}
		for i, b := range w.b {
			if b.n < 1 || (i > 0 && b.minute <= w.b[i-1].minute) {
				t.Fatalf("decode accepted an invalid window %+v", w.b)
			}
		}
		again, err := decode(w.encode(w.b[0].minute - 1))
		if err != nil || !reflect.DeepEqual(again, w) {
			t.Fatalf("re-encoding %+v gave %+v, %v", w.b, again, err)
		}
	})
}

// The hours of the day chart add up to the sliding windows: the last one
// is the sliding hour, all of them the sliding day.
func TestHourlyMatchesTheWindows(t *testing.T) {
	clock := newClock(at(0, 9, 0, 0))
	s, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 100, PerDay: 1000}
	mustReserve(t, s, "alice", lim, 1) // day 0 09:00: out of the day by 09:40 of day 1
	clock.Set(at(0, 10, 0, 0))
	mustReserve(t, s, "alice", lim, 3) // day 0 10:00
	clock.Set(at(0, 20, 30, 0))
	mustReserve(t, s, "alice", lim, 2) // day 0 20:30
	clock.Set(at(1, 9, 15, 0))
	mustReserve(t, s, "alice", lim, 4) // day 1 09:15
	clock.Set(at(1, 9, 40, 0))

	h := s.Hourly("alice")
	// Hour 23 is (08:40, 09:40] of day 1, hour 0 (09:40, 10:40] of day 0,
	// hour 10 (19:40, 20:40].
	want := [24]int{0: 3, 10: 2, 23: 4}
	if h != want {
		t.Fatalf("hourly = %v, want %v", h, want)
	}
	u := s.Usage("alice", lim)
	sum := 0
	for _, n := range h {
		sum += n
	}
	if h[23] != u.LastHour || sum != u.LastDay {
		t.Fatalf("hourly %v does not add up to the windows: last hour %d, day %d", h, u.LastHour, u.LastDay)
	}
	if s.Hourly("nobody") != [24]int{} {
		t.Fatal("a user without sends has counts")
	}
}
