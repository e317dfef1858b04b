// Package quota enforces each user's sending limits over two sliding
// windows, the last 60 minutes and the last 24 hours, counting one unit per
// accepted recipient. It knows nothing about SMTP: the relay asks Check at
// RCPT time, Holds the recipients once the message is about to be queued
// (writing the hold with Reservation.Write in the transaction that queues
// it), and Releases them if queueing failed after all.
//
// # The windows
//
// Sends are counted in per-minute buckets (unix minute → recipients). At a
// time in minute M, the hourly window holds the buckets of minutes M-59..M
// and the daily window those of M-1439..M. A bucket therefore drops out of a
// window as a whole, 60 (or 1440) minutes after its minute began: a send at
// 10:00:40 is counted until 10:59:59 and frees its slot at 11:00:00. Slots
// free one bucket at a time, never all at once as with calendar hours. The
// minute granularity makes a window between 59 and 60 minutes long (1439 to
// 1440 for the day); that is the price of a small, fixed-size record.
//
// A limit of 0 (or less) blocks all sending in that window: it is how an
// operator suspends a user without deleting it. There is no "unlimited";
// the operator ceiling is 10,000 per day.
//
// # On disk
//
// The package owns one bucket, "quota", in a bbolt database it shares with
// other packages. It holds one key per user and hour with sends in the last
// 24 hours (at most 25 per user, as the day rarely starts on an hour):
//
//	key    the unix hour, 8 bytes big-endian with the sign bit flipped
//	       (so keys sort by time, even before 1970), then the login,
//	       byte for byte
//	value  1 byte, format version 3, then the counts of the hour's 60
//	       minutes, first minute first, 4 bytes big-endian each, 0 for
//	       a minute without sends; never all 0
//
// A write puts the one hour it is about: 241 bytes of value, however long
// the user's history; a user who sent in every minute of the day takes
// about 7.4 KB of pages (BENCH.md). Sorting by hour first puts the expired keys of every user at
// the front of the bucket: each write deletes up to two of them, whoever's
// they are, and Open all of them, along with keys whose sends have all left
// the day. An hour without sends has no key. Open loads every count into
// memory, which is where Check and Usage read; bbolt is only written.
//
// Open converts the two older layouts, in its own transaction, all or
// nothing: format version 1 kept one key per user, rewritten whole on
// every write (v1.go); the per-minute layout kept a nested bucket per
// user with one key per minute (minutes.go). Code of either layout refuses
// to open the hour keys rather than misread them.
//
// # Exactness and durability
//
// Hold checks and counts in memory under one mutex, so concurrent holds
// can never together cross a limit. It does not write: the caller puts
// Reservation.Write in the transaction that stores the message, so one
// fsync makes both durable, and Releases the hold if that transaction
// fails. Release commits the hour's new counts with DB.Batch (group
// commit) and returns only once that commit is on disk; if it fails, the
// slots stay counted.
//
// Write and Release put the hour's counts as they are in memory when they
// run, not a difference: running twice in a retried batch writes the same
// thing, and since bbolt runs one writing transaction at a time, the last
// counts committed are the latest ones. They may also carry another hold
// of the same hour whose own transaction is still pending. If that other
// transaction then fails, disk counts one hold too many until the hour's
// next write. That error is on the safe side: after a crash a
// user may be held back slightly, never allowed to oversend.
//
// # Several nodes: Shared
//
// Relay nodes that share their state in PostgreSQL (package store, kind
// "postgres") share their counts too, through Shared, with the same
// windows and answers as Store. Both are a Limiter. The counts are rows of
// the table quota_sends (login, minute, n), created by the store's
// migration 0002_quota.sql.
//
// Exact across nodes: Hold is one transaction that takes the user's
// advisory lock (pg_advisory_xact_lock of hashtext("outbound.quota:" +
// login)), sums the user's last 60 and 1440 minutes, and either refuses
// with the same *ExceededError or adds n to the current minute; then it
// commits. Holds for one user on any number of nodes are thereby one at a
// time, and never together cross a limit. The count is committed before
// the message is queued, so Reservation.Write does nothing for a shared
// hold, and Release, if queueing fails, subtracts the count again in
// PostgreSQL: reserve, commit locally, release on failure. A crash
// between the hold and the release leaves the count in place, on the
// safe side. Check, at RCPT, reads the sums without locking. Every node
// deletes the minutes that left both windows every 10 minutes.
//
// Each node keeps its own sends of the last 24 hours in memory too, per
// user and minute, whether or not the database can be reached.
//
// When the database cannot be reached (no connection, a connection
// cut, no answer within SharedOptions.Timeout, 2 s by default; a server
// shutting down or starting up), a node judges on its own, by this rule:
//
//   - A limit of 0 (or less) refuses as always: no database is needed
//     to know that.
//   - Otherwise the node may use its share of each limit: the limit
//     divided by the number of live nodes (SharedOptions.LiveNodes: the
//     nodes with a heartbeat in the last minute, as the store last read
//     them), rounded down, against its own sends of the window, those
//     made before the outage included. Over its share, the
//     *ExceededError names the share as Limit and sets Nodes; its text
//     says it is this node's share.
//   - The node refuses with ErrUnavailable (the relay answers 451 4.3.0
//     "Sending limits cannot be checked right now; try again later")
//     when a share is 0 (a limit smaller than the number of nodes), when
//     it has not reached the database since it started (its own counts
//     of the sends before its start are gone), or always when
//     SharedOptions.NoLocalShare is set.
//
// Waiting too long for the user's lock, or for a connection while all of
// the pool's are busy, is congestion, not an outage: Check and Hold fail
// with a temporary error (451 4.3.0 from the relay) and the node keeps
// judging by the shared counts.
//
// As every live node keeps within its share and counts its own sends of
// the whole window, the nodes together stay within each limit while all
// of them are cut off. They may not when only some are (a network
// partition): the nodes that reach the database do not see the others'
// sends until they are written, so a user may send up to one share more
// per cut-off node in a window. A node counted in LiveNodes that died
// only makes the shares smaller.
//
// Switching to judging by the share and back is logged once each way,
// and exposed as the gauge outbound_quota_local_share (1 while judging by
// the share) with the counter outbound_quota_local_holds_total of holds
// decided so, by result (Shared.Collectors, for the caller's registry).
// While judging by the share, a background probe tries the database every
// SharedOptions.ProbeEvery (2 s); the sends held meanwhile, and releases
// not yet applied, are kept in memory and written to the database first
// thing when it answers again, before the node judges by the shared
// counts, so the windows count them. They are lost if the node stops
// before that (the messages are not: only their counts). A Hold whose
// commit was cut off may have been counted by the database and is then
// counted again when the node writes its outage's sends, also on the
// safe side.
//
// Usage, Hourly and Users read the shared counts, and this node's own
// while the database cannot be reached.
package quota

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// bucketName is the bbolt bucket this package owns.
var bucketName = []byte("quota")

// Window lengths in minutes.
const (
	hourMinutes = 60
	dayMinutes  = 24 * 60
)

// Window names, as used in ExceededError.Window.
const (
	Hourly = "hourly"
	Daily  = "daily"
)

// Limits are a user's sending limits, in recipients. A limit of 0 or less
// blocks all sending in that window.
//
// It is the one type for a user's limits: package route derives each
// user's from its route and the configuration, package auth stores a
// user's own override (auth.User.Limits, JSON in the user's record, hence
// the tags), and the admin API shows and sets them. It lives here, in the
// package that enforces it, because auth and quota are storage owners
// that import nothing above them.
type Limits struct {
	PerHour int `json:"per_hour"` // recipients in any sliding 60 minutes
	PerDay  int `json:"per_day"`  // recipients in any sliding 24 hours
}

// Clock returns the current time. Tests inject a fake one; nil means
// time.Now.
type Clock func() time.Time

// Store counts sends per user. It is safe for concurrent use. Open one
// Store per database: it assumes it is the only writer of its bucket.
type Store struct {
	db  *bbolt.DB
	now Clock

	// mu guards users. One mutex for all users is enough: everything done
	// under it is a few microseconds of arithmetic, while the cost of a
	// reservation is the fsync, which happens outside it.
	mu    sync.Mutex
	users map[string]*window
}

// Open returns a Store that keeps its counts in db, creating the "quota"
// bucket if needed, converting older layouts to hour keys (see the package
// doc) and loading the counts of the last 24 hours. Expired hours are
// deleted. A count or record that cannot be decoded is an error: counts
// that silently vanished would let users oversend.
func Open(db *bbolt.DB, now Clock) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{db: db, now: now, users: map[string]*window{}}
	cutoff := unixMinute(now()) - dayMinutes
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		if err := migrate(b, cutoff); err != nil {
			return err
		}
		return s.loadAll(b, cutoff)
	})
	if err != nil {
		// The transaction rolled back: nothing was converted or deleted.
		return nil, err
	}
	return s, nil
}

// Reservation is a successful Hold: n recipients counted for User in the
// minute of At. Pass it to Release to give the slots back. The zero value
// is valid and releases nothing, so callers can release unconditionally.
type Reservation struct {
	User string    // whose quota was charged
	N    int       // recipients counted
	At   time.Time // when; the slots count in the minute bucket of At

	// st is shared by all copies of the Reservation so that a second
	// Release cannot give back slots that belong to other reservations.
	st    *reservationState
	store *Store // the Store that holds it; nil for a Shared hold, which Write need not store
	// shared is the Shared that holds it, nil for a Store's.
	shared *Shared
}

// reservationState is guarded by Store.mu (Shared.mu for a Shared hold).
type reservationState struct {
	minute   int64
	released bool
}

// Check reports whether n more recipients would fit for user now, on top of
// pending recipients the caller already holds but has not reserved (the
// earlier RCPTs of the same transaction). It reserves nothing, so a later
// Hold may still fail. It returns nil, an *ExceededError, or an error
// for negative arguments.
func (s *Store) Check(user string, lim Limits, pending, n int) error {
	if pending < 0 || n < 0 {
		return fmt.Errorf("quota: check for %q: negative count (pending %d, n %d)", user, pending, n)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user].exceeded(user, lim, pending+n, now)
}

// Hold counts n recipients for user now, in memory, if they fit in both
// windows; if they do not it counts nothing and returns an *ExceededError.
// Concurrent calls for one user never together cross a limit: the check
// and the count happen under one lock.
//
// Writing the count is left to the caller, who puts r.Write in the
// transaction that stores the message (one commit for both) and calls
// Release if that transaction fails.
func (s *Store) Hold(user string, lim Limits, n int) (Reservation, error) {
	if err := validHold(user, n); err != nil {
		return Reservation{}, err
	}
	now := s.now()
	minute := unixMinute(now)

	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.users[user]
	if err := w.exceeded(user, lim, n, now); err != nil {
		return Reservation{}, err
	}
	if w == nil {
		w = &window{}
		s.users[user] = w
	}
	w.prune(minute - dayMinutes)
	w.add(minute, n)
	return Reservation{User: user, N: n, At: now, st: &reservationState{minute: minute}, store: s}, nil
}

// validHold refuses what no Hold can count.
func validHold(user string, n int) error {
	if user == "" {
		return errors.New("quota: reserve: empty user")
	}
	if len(user) > maxUserLen {
		return fmt.Errorf("quota: reserve: user name of %d bytes is too long", len(user))
	}
	if n < 1 {
		return fmt.Errorf("quota: reserve for %q: n must be at least 1, not %d", user, n)
	}
	return nil
}

// Write stores the counts of the reservation's hour, this reservation
// included, in tx: one key of constant size, whatever the user's history.
// It may run more than once, as group commits require: the counts come
// from memory and are written whole, not added.
func (r Reservation) Write(tx *bbolt.Tx) error {
	if r.store == nil {
		return nil
	}
	return r.store.write(tx, r.User, r.st.minute)
}

// Release gives back the slots of r, for a message that could not be queued
// after all, and returns once that is committed. Releasing the zero
// Reservation, or one already released, does nothing. Slots older than 24
// hours have expired anyway and are not given back twice. If the commit
// fails the slots stay counted and Release may be called again.
func (s *Store) Release(r Reservation) error {
	if r.st == nil {
		return nil
	}
	if r.store != s {
		return fmt.Errorf("quota: release for %q: the reservation was not made by this store", r.User)
	}
	s.mu.Lock()
	if r.st.released {
		s.mu.Unlock()
		return nil
	}
	took := s.take(r.User, r.st.minute, r.N)
	r.st.released = true
	s.mu.Unlock()
	if took == 0 {
		return nil
	}

	if err := s.persist(r.User, r.st.minute); err != nil {
		s.mu.Lock()
		w := s.users[r.User]
		if w == nil {
			w = &window{}
			s.users[r.User] = w
		}
		w.add(r.st.minute, took)
		r.st.released = false
		s.mu.Unlock()
		return fmt.Errorf("quota: release for %q: %w", r.User, err)
	}
	return nil
}

// take removes up to n from user's bucket of minute and returns how many it
// removed; the bucket may have expired meanwhile. s.mu must be held.
func (s *Store) take(user string, minute int64, n int) int {
	w := s.users[user]
	if w == nil {
		return 0
	}
	took := w.sub(minute, n)
	if w.empty() {
		delete(s.users, user)
	}
	return took
}

// persist writes the counts of minute's hour for user to disk with group
// commit. DB.Batch may run the function more than once, and runs it after
// other reservations may have changed the counts; writing whatever they
// are at that moment is correct either way, since they contain every
// reservation of that hour made before persist was called.
func (s *Store) persist(user string, minute int64) error {
	return s.db.Batch(func(tx *bbolt.Tx) error { return s.write(tx, user, minute) })
}

// write puts user's counts of minute's hour as they are in memory now
// into tx, leaving out expired minutes, and deleting the key when nothing
// is left in that hour.
func (s *Store) write(tx *bbolt.Tx, user string, minute int64) error {
	b := tx.Bucket(bucketName)
	if b == nil {
		return errors.New("bucket \"quota\" is missing")
	}
	cutoff := unixMinute(s.now()) - dayMinutes
	hour := hourOf(minute)
	s.mu.Lock()
	counts := s.users[user].hourCounts(hour, cutoff)
	s.mu.Unlock()
	return putHour(b, user, hour, &counts, cutoff)
}

// Usage is what a user has sent, for display by the admin API and CLI.
type Usage struct {
	User          string
	LastHour      int       // recipients counted in the sliding hour
	LastDay       int       // recipients counted in the sliding day
	Limits        Limits    // the limits the remaining counts are computed from
	RemainingHour int       // PerHour - LastHour, at least 0
	RemainingDay  int       // PerDay - LastDay, at least 0
	NextSlot      time.Time // when one more recipient will fit, if it does not now; zero if it does, or never will (a limit of 0)
}

// Usage reports user's counts now, measured against lim.
func (s *Store) Usage(user string, lim Limits) Usage {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user].usage(user, lim, now)
}

// usage is Usage of the counts in w.
func (w *window) usage(user string, lim Limits, now time.Time) Usage {
	minute := unixMinute(now)
	u := Usage{
		User:     user,
		LastHour: w.sum(minute - hourMinutes),
		LastDay:  w.sum(minute - dayMinutes),
		Limits:   lim,
	}
	u.RemainingHour = max(0, lim.PerHour-u.LastHour)
	u.RemainingDay = max(0, lim.PerDay-u.LastDay)
	var e *ExceededError
	if errors.As(w.exceeded(user, lim, 1, now), &e) && e.RetryIn > 0 {
		u.NextSlot = now.Add(e.RetryIn)
	}
	return u
}

// Hourly counts user's recipients in each of the last 24 hours, oldest
// first, each hour ending on a minute like the sliding windows: the last
// one is Usage's LastHour, and together they are its LastDay. It is for a
// chart of the day.
func (s *Store) Hourly(user string) [24]int {
	minute := unixMinute(s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user].hourly(minute)
}

// hourly is Hourly of the counts in w at minute.
func (w *window) hourly(minute int64) [24]int {
	var out [24]int
	if w == nil {
		return out
	}
	for _, b := range w.b {
		// A minute after now (a clock stepped back) counts in the
		// last hour, as the windows count it.
		if i := 23 - int(max(minute-b.minute, 0)/hourMinutes); i >= 0 {
			out[i] += b.n
		}
	}
	return out
}

// Users returns, sorted, the users with anything counted in the last 24
// hours. It also forgets, in memory, users whose counts have all expired.
func (s *Store) Users() []string {
	cutoff := unixMinute(s.now()) - dayMinutes
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.users))
	for u, w := range s.users {
		w.prune(cutoff)
		if w.empty() {
			delete(s.users, u)
			continue
		}
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// unixMinute is the minute bucket t falls in.
func unixMinute(t time.Time) int64 {
	sec := t.Unix()
	if sec < 0 {
		// Floor, not truncate, so minutes before 1970 stay one bucket
		// each; only a broken clock gets here.
		return (sec - 59) / 60
	}
	return sec / 60
}

// minuteStart is the time minute begins.
func minuteStart(minute int64) time.Time {
	return time.Unix(minute*60, 0)
}
