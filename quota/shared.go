package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// SharedOptions configures a Shared.
type SharedOptions struct {
	// Now is the clock; nil means time.Now. Each node counts in the
	// minutes of its own clock, so the nodes' clocks should agree (NTP).
	Now Clock
	// LiveNodes is the number of relay nodes that the store last saw
	// alive (a heartbeat in the last minute). It divides the limits while
	// the database cannot be reached; nil, or a count below 1, means 1.
	LiveNodes func() int
	// Logger receives the switches to and from judging by this node's
	// share; nil discards them.
	Logger *slog.Logger
	// Timeout bounds every exchange with the database; past it, the
	// database counts as unreachable. 0 means 2 seconds.
	Timeout time.Duration
	// ProbeEvery is how often, while the database cannot be reached or
	// sends wait to be written to it, a background probe tries again. 0
	// means 2 seconds.
	ProbeEvery time.Duration
	// NoLocalShare refuses every Check and Hold with ErrUnavailable while
	// the database cannot be reached, instead of judging by this node's
	// share: for operators who prefer no mail to any risk of a limit
	// overrun during an outage.
	NoLocalShare bool
}

// Defaults of SharedOptions.
const (
	defaultTimeout    = 2 * time.Second
	defaultProbeEvery = 2 * time.Second
	// expireEvery is how often a node deletes the minutes that left every
	// window (all nodes do; the deletes are cheap and idempotent).
	expireEvery = 10 * time.Minute
	// importChunk bounds the rows of one Import statement.
	importChunk = 5000
)

// lockPrefix names the advisory locks of this package, so that they do not
// collide with other users of pg_advisory_xact_lock in the database.
const lockPrefix = "outbound.quota:"

// SQL of the shared counts (table quota_sends, store/migrations/0002_quota.sql).
const (
	// sqlSums sums a user's last 60 and 1440 minutes ($2 is the current
	// minute). Minutes after it (a clock stepped back) count in both,
	// as in window.sum.
	sqlSums = `select coalesce(sum(n) filter (where minute > $2 - 60), 0)::bigint,
	coalesce(sum(n), 0)::bigint
from quota_sends where login = $1 and minute > $2 - 1440`
	sqlRows = `select minute, n from quota_sends
where login = $1 and minute > $2 - 1440 and n > 0 order by minute`
	sqlAdd = `insert into quota_sends as q (login, minute, n) values ($1, $2, $3)
on conflict (login, minute) do update set n = q.n + excluded.n`
	sqlAddMany = `insert into quota_sends as q (login, minute, n)
select * from unnest($1::text[], $2::bigint[], $3::int[])
on conflict (login, minute) do update set n = q.n + excluded.n`
	sqlSubMany = `update quota_sends as q set n = greatest(q.n - t.n, 0)
from unnest($1::text[], $2::bigint[], $3::int[]) as t(login, minute, n)
where q.login = t.login and q.minute = t.minute`
	sqlImport = `insert into quota_sends as q (login, minute, n)
select * from unnest($1::text[], $2::bigint[], $3::int[])
on conflict (login, minute) do update set n = greatest(q.n, excluded.n)`
	sqlUsers = `select distinct login from quota_sends
where minute > $1 - 1440 and n > 0 order by login`
	sqlExpire = `delete from quota_sends where minute <= $1 - 1440`
	sqlProbe  = `select 1 from quota_sends limit 1`
)

// Shared counts sends per user in PostgreSQL, for relay nodes that share
// their limits (see the package doc, "Several nodes"). It is safe for
// concurrent use; Close stops its background probe.
type Shared struct {
	pool *pgxpool.Pool
	o    SharedOptions
	log  *slog.Logger

	// flushMu makes flushes one at a time, so that no pending count is
	// written twice.
	flushMu sync.Mutex

	// mu guards the fields below and the Reservations' state.
	mu sync.Mutex
	// own is what this node sent, per user and minute, for the last 24
	// hours: what it judges by while the database cannot be reached.
	own map[string]*window
	// pending is what the database does not know yet, per user and
	// minute: sends held during an outage (positive), releases it has
	// not applied (negative).
	pending map[sendKey]int
	// reached: the database answered at least once since start.
	reached bool
	// local: the last exchange with the database failed; limits are
	// judged by this node's share until a probe succeeds.
	local bool

	localShare prometheus.GaugeFunc
	localHolds *prometheus.CounterVec

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

type sendKey struct {
	user   string
	minute int64
}

// OpenShared returns a Shared on pool, whose database must have the
// quota_sends table (store's migrations create it). It tries the database
// once: unreachable, it starts judging locally (which, never having
// reached it, refuses with ErrUnavailable) and keeps trying in the
// background; any other error, such as the table missing, is returned.
func OpenShared(pool *pgxpool.Pool, o SharedOptions) (*Shared, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = defaultProbeEvery
	}
	s := &Shared{
		pool: pool, o: o, log: o.Logger,
		own: map[string]*window{}, pending: map[sendKey]int{},
		localHolds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outbound_quota_local_holds_total",
			Help: "Holds decided by this node's share of the limits while the shared counts could not be reached, by result (held, refused, unavailable).",
		}, []string{"result"}),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.localShare = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outbound_quota_local_share",
		Help: "1 while this node judges sending limits by its share, the shared counts being unreachable; 0 otherwise.",
	}, func() float64 {
		if s.Local() {
			return 1
		}
		return 0
	})
	ctx, cancel := s.ctx()
	_, err := s.pool.Exec(ctx, sqlProbe)
	cancel()
	if err != nil && !unreachable(err) {
		return nil, fmt.Errorf("quota: shared counts: %w", err)
	}
	s.note(err)
	go s.run()
	return s, nil
}

// Close stops the background probe. It does not close the pool.
func (s *Shared) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// Collectors are the metrics of s, for the caller's registry:
// outbound_quota_local_share and outbound_quota_local_holds_total.
func (s *Shared) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.localShare, s.localHolds}
}

// Local reports whether s judges limits by this node's share, the
// database being unreachable.
func (s *Shared) Local() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}

func (s *Shared) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.o.Timeout)
}

// Check reports whether n more recipients would fit for user now, on top
// of pending ones, like Store.Check, from the shared counts; while they
// cannot be reached, from this node's share (or ErrUnavailable).
func (s *Shared) Check(user string, lim Limits, pending, n int) error {
	if pending < 0 || n < 0 {
		return fmt.Errorf("quota: check for %q: negative count (pending %d, n %d)", user, pending, n)
	}
	now := s.o.Now()
	if !s.Local() {
		err := s.judgeShared(user, lim, pending+n, now)
		if !s.note(err) {
			return err
		}
	}
	_, err := s.judgeLocal(user, lim, pending+n, now, false)
	return err
}

// judgeShared is Check's reading of the shared counts.
func (s *Shared) judgeShared(user string, lim Limits, need int, now time.Time) error {
	ctx, cancel := s.ctx()
	defer cancel()
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return judge(ctx, conn, user, lim, need, now)
}

// Hold counts n recipients for user now if they fit in both windows, or
// returns an *ExceededError, or an error wrapping ErrUnavailable. With
// the database reachable, the check and the count are one transaction
// under the user's advisory lock, so holds on all nodes together never
// cross a limit; the count is committed when Hold returns, so
// Reservation.Write has nothing to do, and Release takes it back.
func (s *Shared) Hold(user string, lim Limits, n int) (Reservation, error) {
	if err := validHold(user, n); err != nil {
		return Reservation{}, err
	}
	now := s.o.Now()
	if !s.Local() {
		err := s.holdShared(user, lim, n, now)
		if !s.note(err) {
			if err != nil {
				return Reservation{}, err
			}
			return s.counted(user, n, now, false), nil
		}
	}
	return s.judgeLocal(user, lim, n, now, true)
}

// holdShared is Hold's transaction: flush what the database does not know
// yet, then lock the user, sum, and refuse or add. The transaction takes
// two round trips: BEGIN, the lock and the sums in one batch, the insert
// and COMMIT in another. A connection left in a failed transaction is
// closed by the pool when released.
func (s *Shared) holdShared(user string, lim Limits, n int, now time.Time) error {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.flush(ctx); err != nil {
		return err
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	minute := unixMinute(now)
	// A lock wait longer than half the Timeout is congestion, not an
	// outage: it fails with lock_not_available before the Timeout would
	// make the database look unreachable.
	wait := fmt.Sprintf("%dms", (s.o.Timeout / 2).Milliseconds())
	var hour, day int64
	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue("select set_config('lock_timeout', $1, true)", wait)
	b.Queue("select pg_advisory_xact_lock(hashtext($1))", lockPrefix+user)
	b.Queue(sqlSums, user, minute).QueryRow(func(row pgx.Row) error { return row.Scan(&hour, &day) })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if !fits(lim, n, hour, day) {
		// Read the minutes for the wait, under the lock still.
		w, err := loadWindow(ctx, conn, user, minute)
		if err == nil {
			_, err = conn.Exec(ctx, "rollback")
		}
		if err != nil {
			return err
		}
		return w.exceeded(user, lim, n, now)
	}
	b = &pgx.Batch{}
	b.Queue(sqlAdd, user, minute, n)
	b.Queue("commit")
	return conn.SendBatch(ctx, b).Close()
}

// errBusy is a wait for a connection that timed out while the pool had
// every connection out: congestion, which the relay answers with a
// temporary error, rather than an outage to judge locally for.
var errBusy = errors.New("quota: every connection to the database is busy")

// acquire takes a connection of the pool, telling a wait that timed out
// because all were busy (errBusy) from a database that does not answer.
func (s *Shared) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil && ctx.Err() != nil {
		if st := s.pool.Stat(); st.AcquiredConns() >= st.MaxConns() {
			return nil, fmt.Errorf("%w (%d connections)", errBusy, st.MaxConns())
		}
	}
	return conn, err
}

// fits reports whether need more recipients fit in the sums of a user's
// hour and day.
func fits(lim Limits, need int, hour, day int64) bool {
	return hour+int64(need) <= int64(lim.PerHour) && day+int64(need) <= int64(lim.PerDay)
}

// querier is a connection, a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// judge returns nil if need more recipients fit for user now in the
// shared counts, or the *ExceededError of the window holding them back
// (read minute by minute, for the wait), or the database's error.
func judge(ctx context.Context, q querier, user string, lim Limits, need int, now time.Time) error {
	minute := unixMinute(now)
	var hour, day int64
	if err := q.QueryRow(ctx, sqlSums, user, minute).Scan(&hour, &day); err != nil {
		return err
	}
	if fits(lim, need, hour, day) {
		return nil
	}
	w, err := loadWindow(ctx, q, user, minute)
	if err != nil {
		return err
	}
	return w.exceeded(user, lim, need, now)
}

// loadWindow reads user's minutes of the last 24 hours from the database.
func loadWindow(ctx context.Context, q querier, user string, minute int64) (*window, error) {
	rows, err := q.Query(ctx, sqlRows, user, minute)
	if err != nil {
		return nil, err
	}
	w := &window{}
	var b bucket
	_, err = pgx.ForEachRow(rows, []any{&b.minute, &b.n}, func() error {
		w.b = append(w.b, b)
		return nil
	})
	return w, err
}

// judgeLocal judges need more recipients by this node's own counts
// against its share of lim (the package doc's rule), and when hold is set
// and they fit, counts them as sends the database must learn of.
func (s *Shared) judgeLocal(user string, lim Limits, need int, now time.Time, hold bool) (Reservation, error) {
	nodes := 1
	if s.o.LiveNodes != nil {
		nodes = max(1, s.o.LiveNodes())
	}
	result := "unavailable"
	defer func() {
		if hold {
			s.localHolds.WithLabelValues(result).Inc()
		}
	}()
	share, err := s.share(lim, nodes)
	if err != nil {
		return Reservation{}, err
	}
	// The judgement and the count under one lock, as in Store.Hold, so
	// that concurrent holds never together cross the share.
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.own[user].exceeded(user, share, need, now); err != nil {
		result = "refused"
		var ex *ExceededError
		if errors.As(err, &ex) && ex.Limit > 0 {
			ex.Nodes = nodes
		}
		return Reservation{}, err
	}
	if !hold {
		return Reservation{}, nil
	}
	result = "held"
	return s.countLocked(user, need, now, true), nil
}

// share is lim divided among nodes, or ErrUnavailable when the limits
// cannot be judged here: the database was never reached since start,
// NoLocalShare is set, or a share is 0. A limit of 0 or less needs no
// database to refuse, and stays as it is.
func (s *Shared) share(lim Limits, nodes int) (Limits, error) {
	if lim.PerHour <= 0 || lim.PerDay <= 0 {
		return lim, nil
	}
	s.mu.Lock()
	reached := s.reached
	s.mu.Unlock()
	switch {
	case s.o.NoLocalShare:
		return Limits{}, fmt.Errorf("%w: the shared counts cannot be reached", ErrUnavailable)
	case !reached:
		return Limits{}, fmt.Errorf("%w: the shared counts were not reached since start", ErrUnavailable)
	}
	share := Limits{PerHour: lim.PerHour / nodes, PerDay: lim.PerDay / nodes}
	if share.PerHour == 0 || share.PerDay == 0 {
		return Limits{}, fmt.Errorf("%w: limits of %d/hour and %d/day leave no share to each of %d nodes",
			ErrUnavailable, lim.PerHour, lim.PerDay, nodes)
	}
	return share, nil
}

// counted records n sends of user now in this node's own counts, and, for
// a hold decided locally, among the sends the database must learn of.
func (s *Shared) counted(user string, n int, now time.Time, local bool) Reservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countLocked(user, n, now, local)
}

// countLocked is counted with s.mu held.
func (s *Shared) countLocked(user string, n int, now time.Time, local bool) Reservation {
	minute := unixMinute(now)
	w := s.own[user]
	if w == nil {
		w = &window{}
		s.own[user] = w
	}
	w.prune(minute - dayMinutes)
	w.add(minute, n)
	if local {
		s.pending[sendKey{user, minute}] += n
	}
	return Reservation{User: user, N: n, At: now, st: &reservationState{minute: minute}, shared: s}
}

// Release gives back the slots of r: it subtracts them in the database,
// or, while that cannot be reached, remembers to. Releasing the zero
// Reservation, or one already released, does nothing. It returns an
// error only when the database refused the change; the release is still
// remembered and retried.
func (s *Shared) Release(r Reservation) error {
	if r.st == nil {
		return nil
	}
	if r.shared != s {
		return fmt.Errorf("quota: release for %q: the reservation was not made by this limiter", r.User)
	}
	s.mu.Lock()
	if r.st.released {
		s.mu.Unlock()
		return nil
	}
	r.st.released = true
	if w := s.own[r.User]; w != nil {
		w.sub(r.st.minute, r.N)
		if w.empty() {
			delete(s.own, r.User)
		}
	}
	k := sendKey{r.User, r.st.minute}
	if s.pending[k] -= r.N; s.pending[k] == 0 {
		// A hold made during an outage and not written yet: nothing
		// to take back.
		delete(s.pending, k)
	}
	local := s.local
	s.mu.Unlock()
	if local {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.flush(ctx)
	if s.note(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("quota: release for %q: %w", r.User, err)
	}
	return nil
}

// flush writes what the database does not know yet (pending) in one
// transaction: sends are added, releases subtracted. What was written
// leaves pending; counts that arrived meanwhile stay.
func (s *Shared) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	cutoff := unixMinute(s.o.Now()) - dayMinutes
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	snap := maps.Clone(s.pending)
	s.mu.Unlock()

	var add, sub columns
	for k, d := range snap {
		switch {
		case k.minute <= cutoff:
			// Out of every window: nothing to write.
		case d > 0:
			add.append(k, d)
		case d < 0:
			sub.append(k, -d)
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(add.logins) > 0 {
			if _, err := tx.Exec(ctx, sqlAddMany, add.logins, add.minutes, add.ns); err != nil {
				return err
			}
		}
		if len(sub.logins) > 0 {
			if _, err := tx.Exec(ctx, sqlSubMany, sub.logins, sub.minutes, sub.ns); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("quota: writing %d counts made while the database was unreachable: %w", len(snap), err)
	}
	s.mu.Lock()
	for k, d := range snap {
		if s.pending[k] -= d; s.pending[k] == 0 {
			delete(s.pending, k)
		}
	}
	s.mu.Unlock()
	return nil
}

// columns are rows of counts as the arrays unnest reads.
type columns struct {
	logins  []string
	minutes []int64
	ns      []int32
}

func (c *columns) append(k sendKey, n int) {
	c.logins = append(c.logins, k.user)
	c.minutes = append(c.minutes, k.minute)
	c.ns = append(c.ns, int32(min(n, maxBucketCount)))
}

// note records the outcome of an exchange with the database and reports
// whether it failed for want of the database (unreachable). Switching to
// and from judging locally is logged once each way.
func (s *Shared) note(err error) (down bool) {
	down = unreachable(err)
	s.mu.Lock()
	was := s.local
	s.local = down
	if !down {
		s.reached = true
	}
	reached := s.reached
	s.mu.Unlock()
	switch {
	case down && !was:
		nodes := 1
		if s.o.LiveNodes != nil {
			nodes = max(1, s.o.LiveNodes())
		}
		if reached {
			s.log.Warn("quota: the shared counts cannot be reached; judging limits by this node's share until they can",
				"nodes", nodes, "err", err)
		} else {
			s.log.Warn("quota: the shared counts cannot be reached, and were not since start: sending is refused (451) until they can",
				"err", err)
		}
	case !down && was:
		s.log.Info("quota: the shared counts can be reached again; judging limits across all nodes")
	}
	return down
}

// unreachable reports whether err means that the database did not answer:
// no connection, a timeout, a connection cut, a server shutting down or
// starting, or full. Any other error of PostgreSQL's (a missing table, a
// lock wait that timed out) is an answer, and not an outage.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ex *ExceededError
	if errors.As(err, &ex) || errors.Is(err, errBusy) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300": // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	return true
}

// Usage reports user's counts now, measured against lim: the shared
// counts, or while they cannot be reached, this node's own.
func (s *Shared) Usage(user string, lim Limits) Usage {
	now := s.o.Now()
	return s.window(user, now).usage(user, lim, now)
}

// Hourly counts user's recipients in each of the last 24 hours, like
// Store.Hourly: the shared counts, or this node's own while they cannot be
// reached.
func (s *Shared) Hourly(user string) [24]int {
	now := s.o.Now()
	return s.window(user, now).hourly(unixMinute(now))
}

// window is user's counts of the last 24 hours for display.
func (s *Shared) window(user string, now time.Time) *window {
	if !s.Local() {
		ctx, cancel := s.ctx()
		w, err := loadWindow(ctx, s.pool, user, unixMinute(now))
		cancel()
		if err == nil {
			return w
		}
		if !s.note(err) {
			s.log.Error("quota: reading the shared counts", "user", user, "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &window{}
	if own := s.own[user]; own != nil {
		w.b = slices.Clone(own.b)
	}
	return w
}

// Users returns, sorted, the users with anything counted in the last 24
// hours: in the shared counts, or in this node's own while they cannot be
// reached.
func (s *Shared) Users() []string {
	minute := unixMinute(s.o.Now())
	if !s.Local() {
		ctx, cancel := s.ctx()
		defer cancel()
		rows, err := s.pool.Query(ctx, sqlUsers, minute)
		if err == nil {
			var users []string
			if users, err = pgx.CollectRows(rows, pgx.RowTo[string]); err == nil {
				return users
			}
		}
		if !s.note(err) {
			s.log.Error("quota: reading the shared counts' users", "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.own))
	for u, w := range s.own {
		if w.sum(minute-dayMinutes) > 0 {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Import copies the counts of a bbolt Store (a single relay's, before it
// joined a cluster) into the shared counts, for `outbound store migrate`.
// A minute already there keeps the greater count, so importing twice
// changes nothing.
func (s *Shared) Import(local *Store) error {
	cutoff := unixMinute(s.o.Now()) - dayMinutes
	var rows columns
	local.mu.Lock()
	for user, w := range local.users {
		for _, b := range w.b {
			if b.minute > cutoff {
				rows.append(sendKey{user, b.minute}, b.n)
			}
		}
	}
	local.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), max(s.o.Timeout, time.Minute))
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i := 0; i < len(rows.logins); i += importChunk {
			j := min(i+importChunk, len(rows.logins))
			if _, err := tx.Exec(ctx, sqlImport, rows.logins[i:j], rows.minutes[i:j], rows.ns[i:j]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("quota: importing %d minute counts: %w", len(rows.logins), err)
	}
	return nil
}

// run is the background probe: while the database is unreachable or
// counts wait to be written, it tries every ProbeEvery; every expireEvery
// it deletes the minutes that left every window.
func (s *Shared) run() {
	defer close(s.done)
	probe := time.NewTicker(s.o.ProbeEvery)
	defer probe.Stop()
	expire := time.NewTicker(expireEvery)
	defer expire.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-probe.C:
			s.probe()
		case <-expire.C:
			s.expire()
		}
	}
}

// probe tries the database if it is needed: to leave local judgement, or
// to write pending counts. Flushing first means that the windows count the
// outage's sends before any node judges by them again from here.
func (s *Shared) probe() {
	s.mu.Lock()
	needed := s.local || len(s.pending) > 0
	s.mu.Unlock()
	if !needed {
		return
	}
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.pool.Exec(ctx, sqlProbe)
	if err == nil {
		err = s.flush(ctx)
	}
	if !s.note(err) && err != nil {
		s.log.Error("quota: probing the shared counts", "err", err)
	}
}

// expire deletes the shared minutes that left every window, and forgets
// this node's own.
func (s *Shared) expire() {
	minute := unixMinute(s.o.Now())
	s.mu.Lock()
	for u, w := range s.own {
		w.prune(minute - dayMinutes)
		if w.empty() {
			delete(s.own, u)
		}
	}
	local := s.local
	s.mu.Unlock()
	if local {
		return
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.pool.Exec(ctx, sqlExpire, minute); err != nil && !s.note(err) {
		s.log.Error("quota: deleting expired minutes", "err", err)
	}
}
