package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL store: the buckets of several relay nodes in one database.
//
// Layout (store/migrations): kv_buckets holds a row per bucket with its
// sequence, kv a row per key. Writers of one bucket are serialized across
// all nodes by a transaction advisory lock on the bucket's name, taken the
// first time an Update touches the bucket, so an owner's read-modify-write
// in Update is as safe as in bbolt, whose writers are serialized by the
// file. Updates run at READ COMMITTED (under the lock they read the latest
// commit); Views at REPEATABLE READ, so one View sees one moment. An
// Update's writes are queued and sent as one pipelined batch with its next
// read or its COMMIT (postgres_tx.go).
//
// Cached buckets (the ones read on every message: users, smarthosts, ...)
// are mirrored whole in each node's memory. A trigger announces changed
// keys with NOTIFY; one connection per node LISTENs and re-reads them
// (postgres_mirror.go). Views read those buckets from the mirror, which
// keeps serving for MaxStale after the database became unreachable, so a
// short outage does not stop the relay; Updates always read the database.
//
// Caveats: Sequence in a View reads the database even for a cached bucket.
// Watch callbacks run one at a time on the listener's goroutine (keep them
// short; Close waits for them). A bucket another node deleted may read as
// existing and empty in Views here until this node's mirror or memory of
// bucket names learns of it.

// PostgresOptions configure OpenPostgres.
type PostgresOptions struct {
	// DSN is a libpq connection string or URL. It is never logged.
	DSN string
	// Node is this node's name, in the nodes table and in logs (default:
	// the host name).
	Node string
	// Cached are the top-level buckets mirrored whole in memory.
	Cached []string
	// MaxStale is how long the mirrors keep serving reads after the
	// database became unreachable; past it, reads of cached buckets go to
	// the database (and fail while it is down).
	MaxStale time.Duration
	// Logger gets the transitions of the connection (down, up again).
	Logger *slog.Logger
	// Passive opens the store for a tool (store migrate), not a relay
	// node: it writes no heartbeat, so the nodes do not count it.
	Passive bool
}

// Postgres is the store in a PostgreSQL database shared by several nodes.
type Postgres struct {
	pool     *pgxpool.Pool
	node     string
	maxStale time.Duration
	log      *slog.Logger
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	// known are the names of buckets seen to exist, so that Bucket need
	// not ask the database each time. A bucket another node deleted stays
	// here and reads as empty.
	known sync.Map // string → struct{}

	mirrors map[string]*mirror // the cached buckets, fixed at open
	// kick tells a reconnecting listener that a query just reached the
	// database (noteOK).
	kick chan struct{}

	watchMu  sync.Mutex
	watchers map[string][]func(key []byte)
	notify   map[string]bool // buckets to register in kv_notify (at each connect)

	health    sync.Mutex
	listening bool      // the listener is connected
	lostAt    time.Time // when the listener lost its connection
	queryDown bool      // the last query failed for want of a connection
	healthy   bool      // as last logged

	liveNodes atomic.Int64
}

var _ DB = (*Postgres)(nil)

const (
	connectTimeout = 5 * time.Second  // a down database fails fast
	stmtTimeout    = 30 * time.Second // one statement of a transaction
	heartbeatEvery = 10 * time.Second
	// countEvery is how often the live nodes are counted: often, so that
	// a node that just joined divides the limits at once should the
	// database go down (package quota's share).
	countEvery      = 2 * time.Second
	updateAttempts  = 10
	defaultMaxConns = 10
)

// OpenPostgres connects, migrates the schema, loads the mirrors of the
// cached buckets and starts the listener and the heartbeat. It fails when
// the database cannot be reached: a node starts only with its store.
func OpenPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, errors.New("store: the PostgreSQL DSN does not parse (see the [store] dsn setting)")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > connectTimeout {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if !strings.Contains(o.DSN, "pool_max_conns") {
		// pgxpool's default (4 on a small machine) is few for a relay's
		// sessions, the quota's SQL and the Updates waiting on a bucket's
		// lock at once.
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	if o.Node == "" {
		o.Node, _ = os.Hostname()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &Postgres{
		pool:     pool,
		node:     o.Node,
		maxStale: o.MaxStale,
		log:      o.Logger.With("node", o.Node),
		ctx:      pctx,
		cancel:   cancel,
		mirrors:  map[string]*mirror{},
		kick:     make(chan struct{}, 1),
		watchers: map[string][]func([]byte){},
		notify:   map[string]bool{},
		healthy:  true,
	}
	p.liveNodes.Store(1)
	for _, name := range o.Cached {
		p.mirrors[name] = &mirror{name: name}
		p.notify[name] = true
	}
	fail := func(err error) (*Postgres, error) {
		cancel()
		pool.Close()
		return nil, err
	}
	if err := migrate(ctx, pool); err != nil {
		return fail(fmt.Errorf("store: postgres: %w", err))
	}
	if !o.Passive {
		if _, err := pool.Exec(ctx, `INSERT INTO nodes (name, started, seen) VALUES ($1, now(), now())
		ON CONFLICT (name) DO UPDATE SET started = now(), seen = now()`, p.node); err != nil {
			return fail(fmt.Errorf("store: postgres: %w", err))
		}
	}
	p.countNodes(ctx)
	conn, err := p.connectListener(ctx)
	if err != nil {
		return fail(fmt.Errorf("store: postgres: %w", err))
	}
	p.listening = true
	p.wg.Add(2)
	go p.listen(conn)
	go p.heartbeat(o.Passive)
	return p, nil
}

// Pool is the connection pool, for package quota's own SQL.
func (p *Postgres) Pool() *pgxpool.Pool { return p.pool }

// Shared is true: other nodes use the database too.
func (p *Postgres) Shared() bool { return true }

// Close stops the listener and the heartbeat and closes the pool.
func (p *Postgres) Close() {
	p.cancel()
	p.wg.Wait()
	p.pool.Close()
}

// Update runs fn in a transaction and commits it when fn returns nil. It
// runs fn again (up to 10 times) when the database reports a lost race
// (serialization failure, deadlock): fn must be repeatable.
func (p *Postgres) Update(fn func(Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := p.update(fn)
		if attempt >= updateAttempts || !retryable(err) {
			return err
		}
		// 5..15 ms, then up to 8× that: small, jittered so that the
		// losers do not collide again.
		d := time.Duration(5+rand.IntN(10)) * time.Millisecond << min(attempt-1, 3)
		select {
		case <-time.After(d):
		case <-p.ctx.Done():
			return err
		}
	}
}

func (p *Postgres) update(fn func(Tx) error) error {
	if p.ctx.Err() != nil {
		return errors.New("store: postgres store closed")
	}
	ctx, cancel := context.WithTimeout(p.ctx, stmtTimeout)
	conn, err := p.pool.Acquire(ctx)
	cancel()
	if err != nil {
		p.noteErr(err)
		return unreachable(fmt.Errorf("store: postgres: %w", err))
	}
	// BEGIN goes with the first statement fn sends (postgres_tx.go).
	t := newUpdateTx(p, conn)
	// Also when fn panics, or the connection would stay taken.
	defer t.release()
	ferr := fn(t)
	if t.err != nil {
		// A failed statement aborted the transaction: report the cause
		// (fn's own error may only be a consequence of reading nil), which
		// is also what Update retries on.
		return unreachable(t.err)
	}
	if ferr != nil {
		return ferr
	}
	if !t.commit() {
		return unreachable(t.err)
	}
	// Before the mirrors' refresh takes a connection of its own: Updates
	// holding every connection of the pool while waiting for one would
	// wait forever.
	t.release()
	t.committed()
	return nil
}

// View runs fn in a read-only transaction, begun only when fn reads
// something the mirrors do not serve.
func (p *Postgres) View(fn func(Tx) error) error {
	if p.ctx.Err() != nil {
		return errors.New("store: postgres store closed")
	}
	t := newViewTx(p)
	defer func() {
		if t.tx != nil {
			p.rollback(t.tx) // read only: nothing to commit
		}
	}()
	ferr := fn(t)
	if t.err != nil {
		return unreachable(t.err)
	}
	return ferr
}

// ErrUnavailable marks a failure to reach the database at all (as opposed
// to a statement it refused): callers answer it as temporary (the admin
// API with 503, SMTP with 451).
var ErrUnavailable = errors.New("the shared store (PostgreSQL) cannot be reached")

// unreachable wraps err in ErrUnavailable when it never reached the
// database (no PgError), like noteErr's rule.
func unreachable(err error) error {
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (p *Postgres) rollback(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), stmtTimeout)
	defer cancel()
	tx.Rollback(ctx)
}

// retryable says whether a transaction lost a race and may run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// bucketLock is the advisory lock key of a bucket's writers.
func bucketLock(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("outbound.kv:" + name))
	return int64(h.Sum64())
}

// Healthy says whether the listener is connected and the last query did
// not fail for want of a connection.
func (p *Postgres) Healthy() bool {
	p.health.Lock()
	defer p.health.Unlock()
	return p.listening && !p.queryDown
}

// LiveNodes is the number of nodes (this one included) that wrote their
// heartbeat in the last minute, as last counted.
func (p *Postgres) LiveNodes() int { return int(p.liveNodes.Load()) }

// noteErr records a failed query: one that never reached the database (no
// PgError) marks it unreachable.
func (p *Postgres) noteErr(err error) {
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) || errors.Is(err, pgx.ErrNoRows) {
		return
	}
	if p.ctx.Err() != nil {
		return // closing
	}
	p.setHealth(func() { p.queryDown = true })
}

// noteOK records a query that reached the database.
func (p *Postgres) noteOK() {
	p.health.Lock()
	down, listening := p.queryDown, p.listening
	p.health.Unlock()
	if !listening {
		select { // the database answers: the listener may reconnect now
		case p.kick <- struct{}{}:
		default:
		}
	}
	if down {
		p.setHealth(func() { p.queryDown = false })
	}
}

// setHealth changes the state under the lock and logs a transition once.
func (p *Postgres) setHealth(change func()) {
	p.health.Lock()
	change()
	now := p.listening && !p.queryDown
	was := p.healthy
	p.healthy = now
	p.health.Unlock()
	switch {
	case was && !now:
		p.log.Warn("store: the PostgreSQL database is unreachable; cached buckets are served from memory", "max_stale", p.maxStale)
	case !was && now:
		p.log.Info("store: the PostgreSQL database is reachable again")
	}
}

// mirrorsServe says whether reads of cached buckets may come from memory:
// while the listener is connected, and for MaxStale after it lost the
// connection.
func (p *Postgres) mirrorsServe() bool {
	p.health.Lock()
	defer p.health.Unlock()
	return p.listening || time.Since(p.lostAt) < p.maxStale
}

// heartbeat keeps this node's row in nodes current (unless passive) and
// counts the nodes.
func (p *Postgres) heartbeat(passive bool) {
	defer p.wg.Done()
	tick := time.NewTicker(countEvery)
	defer tick.Stop()
	lastBeat := time.Now()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(p.ctx, stmtTimeout)
		var err error
		if !passive && time.Since(lastBeat) >= heartbeatEvery-countEvery/2 {
			_, err = p.pool.Exec(ctx, `INSERT INTO nodes (name, started, seen) VALUES ($1, now(), now())
			ON CONFLICT (name) DO UPDATE SET seen = now()`, p.node)
			if err == nil {
				lastBeat = time.Now()
			}
		}
		if err != nil {
			p.noteErr(err)
		} else if p.countNodes(ctx) {
			p.noteOK()
		}
		cancel()
	}
}

// countNodes counts the live nodes; false when the database did not answer.
func (p *Postgres) countNodes(ctx context.Context) bool {
	var n int64
	err := p.pool.QueryRow(ctx, "SELECT count(*) FROM nodes WHERE seen > now() - interval '1 minute'").Scan(&n)
	if err != nil {
		p.noteErr(err)
		return false
	}
	p.liveNodes.Store(max(n, 1))
	return true
}
