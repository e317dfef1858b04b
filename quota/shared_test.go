package quota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"outbound/internal/pgtest"
	"outbound/store"
)

// testTimeout is the Shared's timeout in tests: generous, so that a
// loaded CI machine's slow exchanges are not taken for an outage.
const testTimeout = 30 * time.Second

// quotaDB makes a database in cluster srv with the store's schema,
// quota_sends included (store/migrations/0002_quota.sql), as a node's
// store.OpenPostgres makes it, and returns its DSN.
func quotaDB(t testing.TB, srv *pgtest.Server) string {
	t.Helper()
	dsn := srv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: "migrator", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dsn
}

func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// node opens a Shared on its own pool of dsn, as one relay node would.
func node(t testing.TB, dsn string, o SharedOptions) *Shared {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = testTimeout
	}
	s, err := OpenShared(newPool(t, dsn), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// sent is the sum of user's counts in the database.
func sent(t testing.TB, dsn, user string) int {
	t.Helper()
	var n int
	err := newPool(t, dsn).QueryRow(context.Background(),
		"select coalesce(sum(n), 0)::int from quota_sends where login = $1", user).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond until it holds, failing t after a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSharedRacingNodesHoldExactlyTheLimit(t *testing.T) {
	dsn := quotaDB(t, pgtest.Shared(t))
	nodes := []*Shared{node(t, dsn, SharedOptions{}), node(t, dsn, SharedOptions{}), node(t, dsn, SharedOptions{})}
	lim := Limits{PerHour: 50, PerDay: 500}
	const user = "alice@example.com"

	var held, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				_, err := nodes[(g+i)%3].Hold(user, lim, 1)
				var ex *ExceededError
				switch {
				case err == nil:
					held.Add(1)
				case errors.As(err, &ex) && ex.Window == Hourly && ex.Nodes == 0:
					refused.Add(1)
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Hold: %v", err)
	}
	if held.Load() != 50 || refused.Load() != 50 {
		t.Errorf("%d holds succeeded and %d were refused, want 50 and 50", held.Load(), refused.Load())
	}
	if n := sent(t, dsn, user); n != 50 {
		t.Errorf("the database counts %d, want 50", n)
	}
	for i, s := range nodes {
		if s.Local() {
			t.Errorf("node %d judged locally", i)
		}
		if u := s.Usage(user, lim); u.LastHour != 50 || u.RemainingHour != 0 || u.NextSlot.IsZero() {
			t.Errorf("node %d: Usage = %+v", i, u)
		}
		if err := s.Check(user, lim, 0, 1); err == nil {
			t.Errorf("node %d: Check lets a 51st recipient through", i)
		}
	}
}

func TestSharedReleaseGivesSlotsBack(t *testing.T) {
	dsn := quotaDB(t, pgtest.Shared(t))
	clock := newClock(at(0, 10, 0, 0))
	a := node(t, dsn, SharedOptions{Now: clock.Now})
	b := node(t, dsn, SharedOptions{Now: clock.Now})
	lim := Limits{PerHour: 3, PerDay: 10}
	const user = "bob@example.com"

	r, err := a.Hold(user, lim, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Write(nil); err != nil {
		t.Fatalf("Write of a shared hold: %v", err)
	}
	if _, err := b.Hold(user, lim, 2); err == nil {
		t.Fatal("b held 2 more of a limit of 3 with 2 held on a")
	}
	if err := a.Release(r); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(r); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if n := sent(t, dsn, user); n != 0 {
		t.Errorf("after Release the database counts %d, want 0", n)
	}
	if _, err := b.Hold(user, lim, 3); err != nil {
		t.Errorf("after Release: %v", err)
	}
	if err := b.Release(r); err == nil {
		t.Error("b released a's reservation")
	}
	if err := b.Release(Reservation{}); err != nil {
		t.Errorf("Release of the zero Reservation: %v", err)
	}
	if got := a.Users(); len(got) != 1 || got[0] != user {
		t.Errorf("Users = %q", got)
	}
}

func TestSharedWindowSlides(t *testing.T) {
	dsn := quotaDB(t, pgtest.Shared(t))
	clock := newClock(at(0, 10, 0, 40))
	a := node(t, dsn, SharedOptions{Now: clock.Now})
	b := node(t, dsn, SharedOptions{Now: clock.Now})
	lim := Limits{PerHour: 5, PerDay: 8}
	const user = "carol@example.com"

	if _, err := a.Hold(user, lim, 5); err != nil {
		t.Fatal(err)
	}
	clock.Set(at(0, 10, 30, 0))
	var ex *ExceededError
	_, err := b.Hold(user, lim, 1)
	if !errors.As(err, &ex) || ex.Window != Hourly || ex.RetryIn != 30*time.Minute {
		t.Fatalf("at 10:30, Hold = %v, want the hourly limit, next slot in 30m (11:00)", err)
	}
	clock.Set(at(0, 11, 0, 0))
	if _, err := b.Hold(user, lim, 3); err != nil {
		t.Fatalf("at 11:00, the 10:00 minute left the hour: %v", err)
	}
	// 8 in the day now: the daily window holds the next one back until
	// 10:00's minute leaves it, tomorrow at 10:00.
	clock.Set(at(0, 12, 0, 0))
	_, err = a.Hold(user, lim, 1)
	if !errors.As(err, &ex) || ex.Window != Daily || ex.RetryIn != 22*time.Hour {
		t.Fatalf("at 12:00, Hold = %v, want the daily limit, next slot in 22h", err)
	}
	if h := a.Hourly(user); h[21] != 5 || h[22] != 3 || h[23] != 0 {
		t.Errorf("Hourly = %v", h)
	}
	clock.Set(at(1, 10, 0, 0))
	if _, err := a.Hold(user, lim, 5); err != nil {
		t.Fatalf("a day later: %v", err)
	}

	// The expiry deletes what left every window, and only that.
	a.expire()
	var rows int
	if err := a.pool.QueryRow(context.Background(), "select count(*) from quota_sends").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("after expiry %d rows are left, want 2 (11:00 yesterday, 10:00 today)", rows)
	}
}

// The database stopped (its clients told so) or killed (their
// connections cut without a word): either way the nodes judge by their
// shares, and when it is back they write what they sent meanwhile.
func TestSharedJudgesByItsShareWhileTheDatabaseIsDown(t *testing.T) {
	t.Run("stopped", func(t *testing.T) {
		testOutage(t, func(srv *pgtest.Server) error { return srv.Stop() })
	})
	t.Run("killed", func(t *testing.T) {
		testOutage(t, func(srv *pgtest.Server) error { srv.Kill(); return nil })
	})
}

func testOutage(t *testing.T, down func(*pgtest.Server) error) {
	srv := pgtest.Start(t)
	dsn := quotaDB(t, srv)
	clock := newClock(at(0, 10, 0, 0))
	three := func() int { return 3 }
	o := SharedOptions{Now: clock.Now, LiveNodes: three, ProbeEvery: 50 * time.Millisecond, Timeout: 5 * time.Second}
	a := node(t, dsn, o)
	b := node(t, dsn, o)
	lim := Limits{PerHour: 30, PerDay: 300}
	const user = "dave@example.com"

	// Before the outage: 4 on a, 10 on b. a's 4 count against its share.
	if _, err := a.Hold(user, lim, 4); err != nil {
		t.Fatal(err)
	}
	beforeOutage, err := a.Hold(user, lim, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Hold(user, lim, 10); err != nil {
		t.Fatal(err)
	}

	strictOpts := o
	strictOpts.NoLocalShare = true
	strict := node(t, dsn, strictOpts)

	if err := down(srv); err != nil {
		t.Fatal(err)
	}
	// A release while the database is down is remembered.
	if err := a.Release(beforeOutage); err != nil {
		t.Fatalf("Release during the outage: %v", err)
	}
	// a's share is 30/3 = 10 an hour, of which it used 4.
	for i := range 6 {
		if _, err := a.Hold(user, lim, 1); err != nil {
			t.Fatalf("hold %d within a's share: %v", i+1, err)
		}
	}
	if !a.Local() {
		t.Fatal("a does not say it judges locally")
	}
	_, err = a.Hold(user, lim, 1)
	var ex *ExceededError
	if !errors.As(err, &ex) || ex.Limit != 10 || ex.Nodes != 3 || ex.Window != Hourly {
		t.Fatalf("over a's share: %v, want the hourly share of 10", err)
	}
	if err := a.Check(user, lim, 0, 1); !errors.As(err, &ex) {
		t.Errorf("Check over a's share: %v", err)
	}
	// Racing holds stay within the share too: a user who sent nothing
	// before gets exactly a's 10.
	var held atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var over *ExceededError
			if _, err := a.Hold("gus@example.com", lim, 1); err == nil {
				held.Add(1)
			} else if !errors.As(err, &over) {
				t.Errorf("racing local hold: %v", err)
			}
		}()
	}
	wg.Wait()
	if held.Load() != 10 {
		t.Errorf("%d racing local holds succeeded, want a's share of 10", held.Load())
	}
	// Limits smaller than the nodes leave no share: 451.
	if _, err := a.Hold("erin@example.com", Limits{PerHour: 2, PerDay: 100}, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a limit of 2 on 3 nodes: %v, want ErrUnavailable", err)
	}
	if err := a.Check("erin@example.com", Limits{PerHour: 2, PerDay: 100}, 0, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Check, a limit of 2 on 3 nodes: %v, want ErrUnavailable", err)
	}
	// A limit of 0 refuses as always.
	if _, err := a.Hold("erin@example.com", Limits{}, 1); !errors.As(err, &ex) || ex.Limit != 0 {
		t.Errorf("a limit of 0: %v", err)
	}
	// A node that never reached the database cannot judge at all.
	c := node(t, dsn, o)
	if _, err := c.Hold(user, lim, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a node started during the outage: %v, want ErrUnavailable", err)
	}
	// Nor can one told not to.
	if _, err := b.Hold("hal@example.com", lim, 1); err != nil {
		t.Errorf("b, within its share: %v", err)
	}
	if _, err := strict.Hold("hal@example.com", lim, 1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("with NoLocalShare: %v, want ErrUnavailable", err)
	}
	if got := testutil.ToFloat64(a.localShare); got != 1 {
		t.Errorf("outbound_quota_local_share = %v, want 1", got)
	}
	if got := testutil.ToFloat64(a.localHolds.WithLabelValues("held")); got != 16 {
		t.Errorf("local holds held = %v, want 16", got)
	}
	if got := testutil.ToFloat64(a.localHolds.WithLabelValues("refused")); got != 12 {
		t.Errorf("local holds refused = %v, want 12 (over the share, a limit of 0)", got)
	}
	if got := testutil.ToFloat64(a.localHolds.WithLabelValues("unavailable")); got != 1 {
		t.Errorf("local holds unavailable = %v, want 1", got)
	}
	if u := a.Usage(user, lim); u.LastHour != 10 {
		t.Errorf("Usage during the outage: %d in the hour, want a's own 10", u.LastHour)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Shared{a, c} {
		waitFor(t, "back to the shared counts", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return !s.local && len(s.pending) == 0
		})
	}
	// 4 + 10 before, 6 on a during; the released one is gone.
	waitFor(t, "b's outage sends written", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return !b.local && len(b.pending) == 0
	})
	if n := sent(t, dsn, user); n != 20 {
		t.Errorf("after the outage the database counts %d, want 20", n)
	}
	if n := sent(t, dsn, "hal@example.com"); n != 1 {
		t.Errorf("after the outage the database counts %d for hal, want b's 1", n)
	}
	if n := sent(t, dsn, "gus@example.com"); n != 10 {
		t.Errorf("after the outage the database counts %d for gus, want 10", n)
	}
	if got := testutil.ToFloat64(a.localShare); got != 0 {
		t.Errorf("outbound_quota_local_share = %v, want 0", got)
	}
	if _, err := c.Hold(user, lim, 11); err == nil {
		t.Error("c held 11 with 20 of 30 sent")
	}
	if _, err := c.Hold(user, lim, 10); err != nil {
		t.Errorf("c, the last 10 of 30: %v", err)
	}
}

func TestSharedImportIsIdempotent(t *testing.T) {
	dsn := quotaDB(t, pgtest.Shared(t))
	clock := newClock(at(0, 10, 0, 0))
	local, _, _ := newStore(t, clock)
	lim := Limits{PerHour: 100, PerDay: 1000}
	for i, user := range []string{"ann@example.com", "ben@example.com", "ann@example.com"} {
		clock.Set(at(0, 8+i, 30, 0))
		if _, err := local.Hold(user, lim, 3+i); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(at(0, 11, 0, 0))
	s := node(t, dsn, SharedOptions{Now: clock.Now})
	for range 2 {
		if err := s.Import(local); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range []string{"ann@example.com", "ben@example.com"} {
		if got, want := s.Usage(user, lim), local.Usage(user, lim); got != want {
			t.Errorf("%s: Usage after Import = %+v, want %+v", user, got, want)
		}
		if got, want := s.Hourly(user), local.Hourly(user); got != want {
			t.Errorf("%s: Hourly after Import = %v, want %v", user, got, want)
		}
	}
	if n := sent(t, dsn, "ann@example.com"); n != 8 {
		t.Errorf("ann: %d counted, want 8", n)
	}
}

// A pool with every connection out is congestion: Hold fails with a
// temporary error, and the node does not take it for an outage.
func TestSharedBusyPoolIsNoOutage(t *testing.T) {
	dsn := quotaDB(t, pgtest.Shared(t))
	pool := newPool(t, dsn+"&pool_max_conns=1")
	s, err := OpenShared(pool, SharedOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{PerHour: 5, PerDay: 5}
	if _, err := s.Hold("fay@example.com", lim, 1); !errors.Is(err, errBusy) {
		t.Errorf("Hold with the pool's one connection out: %v, want errBusy", err)
	}
	if err := s.Check("fay@example.com", lim, 0, 1); !errors.Is(err, errBusy) {
		t.Errorf("Check with the pool's one connection out: %v, want errBusy", err)
	}
	if s.Local() {
		t.Error("a busy pool made the node judge locally")
	}
	conn.Release()
	if _, err := s.Hold("fay@example.com", lim, 1); err != nil {
		t.Errorf("with the connection back: %v", err)
	}
}

func TestOpenSharedWithoutTheTableFails(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	if s, err := OpenShared(newPool(t, dsn), SharedOptions{Timeout: testTimeout}); err == nil {
		s.Close()
		t.Fatal("OpenShared succeeded without quota_sends")
	}
}

func TestUnreachableTellsOutagesFromAnswers(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&ExceededError{}, false},
		{&pgconn.PgError{Code: "42P01"}, false},                     // undefined_table
		{&pgconn.PgError{Code: "55P03"}, false},                     // lock_not_available
		{fmt.Errorf("x: %w", &pgconn.PgError{Code: "57P01"}), true}, // admin_shutdown
		{&pgconn.PgError{Code: "08006"}, true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("%w (4 connections)", errBusy), false},
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
	} {
		if got := unreachable(tc.err); got != tc.want {
			t.Errorf("unreachable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// BenchmarkSharedHold measures Hold against PostgreSQL (a pgtest cluster
// on loopback, fsync off): each session its own user, or all sessions one
// user (whose holds the advisory lock makes one at a time).
func BenchmarkSharedHold(b *testing.B) {
	dsn := quotaDB(b, pgtest.Shared(b))
	s := node(b, dsn, SharedOptions{})
	lim := Limits{PerHour: 1 << 30, PerDay: 1 << 30}
	var users atomic.Int64
	for _, oneUser := range []bool{false, true} {
		for _, perCPU := range []int{1, 8} {
			b.Run(fmt.Sprintf("one-user=%v/sessions-per-cpu=%d", oneUser, perCPU), func(b *testing.B) {
				b.SetParallelism(perCPU)
				b.RunParallel(func(pb *testing.PB) {
					user := fmt.Sprintf("user%d@example.com", users.Add(1))
					if oneUser {
						user = "one@example.com"
					}
					for pb.Next() {
						if _, err := s.Hold(user, lim, 1); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
