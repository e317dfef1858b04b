package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"
)

// How an Update talks to the database: in as few round trips as it can.
//
// An Update's writes (Put, Delete, CreateBucketIfNotExists, the lock of a
// bucket) are queued, not sent: the queue goes to the database as one
// pipelined batch (pgx.Batch) together with the next statement whose answer
// fn needs (a read: Get, a cursor's page, KeyN, whether a bucket exists,
// DeleteBucket's count), which is the batch's last statement, so it sees
// every write queued before it. BEGIN rides in the first batch, COMMIT in
// the last. A bucket's sequence is read with its existence once, when the
// Update first opens the bucket under its lock (no other writer can move it
// then), counted in memory, and written in the COMMIT's batch. So an Update
// costs a round trip per read and per bucket opened, plus one for the
// commit, however many keys it writes: the shipper's batch of 256 events
// (a NextSequence and 2-3 Puts each, ~1,000 round trips one statement at a
// time) is now about six, plus two for each event that reads its
// message's earlier ones (package events' inherit).
//
// The price: a write that PostgreSQL refuses (a key of a bucket another
// node deleted) fails at the next read or at commit rather than at Put,
// and Put returns nil meanwhile. Either way the failure is the
// transaction's (err, below): later reads return nil, the Update returns
// it and commits nothing. A batch's statements stop at the first error.

// pageSize is how many keys ForEach and cursors read per query.
const pageSize = 256

// refreshKeysMax is how many keys of a cached bucket an Update may write
// before its mirror is reloaded whole after commit rather than key by key.
const refreshKeysMax = 64

// queueMax is how many statements an Update queues before sending them
// without waiting for a read, which bounds the queue's memory (store
// migrate writes 500 keys a transaction).
const queueMax = 1000

// pgTx is a transaction of the Postgres store. Its first failed statement
// is kept (err): PostgreSQL has aborted the transaction by then, so every
// later operation does nothing (reads return nil), and Update or View
// return it.
type pgTx struct {
	p        *Postgres
	writable bool
	err      error

	// A View's transaction: nil until something is read from the database.
	tx pgx.Tx
	// An Update's connection, the statements queued on it (the first
	// batch begins with BEGIN) and whether anything was sent yet.
	conn   *pgxpool.Conn
	queued *pgx.Batch
	begun  bool
	rounds int // batches sent (tests count them)

	buckets map[string]*pgBucket // the buckets fn touched, by name (nil: missing)
	// Of the cached buckets: the keys written (re-read into the mirror
	// after commit), and whole buckets created or deleted (reloaded).
	written   map[string]map[string]bool
	reload    map[string]bool
	created   []string // buckets to remember as existing after commit
	forgotten []string // buckets to forget after commit
}

// newViewTx is a View's transaction; it begins on its first read.
func newViewTx(p *Postgres) *pgTx {
	return &pgTx{p: p, buckets: map[string]*pgBucket{}}
}

// newUpdateTx is an Update's transaction on conn; release it when done.
func newUpdateTx(p *Postgres, conn *pgxpool.Conn) *pgTx {
	t := &pgTx{p: p, writable: true, conn: conn, queued: &pgx.Batch{}, buckets: map[string]*pgBucket{},
		written: map[string]map[string]bool{}, reload: map[string]bool{}}
	// Under the buckets' locks, each statement reads the latest commit.
	t.queued.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	return t
}

func (t *pgTx) Writable() bool { return t.writable }

// queue adds a statement to an Update's batch, sending the batch when it is
// long. It returns false (and does nothing) once the transaction failed.
func (t *pgTx) queue(sql string, args ...any) bool {
	if t.err != nil {
		return false
	}
	t.queued.Queue(sql, args...)
	if t.queued.Len() >= queueMax {
		return t.send(nil)
	}
	return true
}

// send sends an Update's queued statements and then those last adds (a
// read and its callback; nil: none) in one batch, one round trip. It
// returns false (and does nothing) once the transaction has failed.
func (t *pgTx) send(last func(b *pgx.Batch)) bool {
	if t.err != nil {
		return false
	}
	b := t.queued
	t.queued = &pgx.Batch{}
	if last != nil {
		last(b)
	}
	if b.Len() == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(t.p.ctx, stmtTimeout)
	defer cancel()
	t.begun = true
	t.rounds++
	if err := t.conn.SendBatch(ctx, b).Close(); err != nil {
		t.fail(err)
		return false
	}
	t.p.noteOK()
	return true
}

// commit sends what is queued, the sequences fn moved and COMMIT in one
// batch. An Update that sent nothing has nothing to commit.
func (t *pgTx) commit() bool {
	if !t.begun && t.queued.Len() <= 1 {
		return t.err == nil
	}
	for _, b := range t.buckets {
		if b != nil && b.seqMoved {
			t.queue("UPDATE kv_buckets SET seq = $2 WHERE name = $1", b.name, b.seq)
		}
	}
	var tag pgconn.CommandTag
	if !t.send(func(b *pgx.Batch) {
		b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	}) {
		return false
	}
	if tag.String() != "COMMIT" {
		// PostgreSQL answers ROLLBACK to a COMMIT of a failed transaction.
		t.fail(fmt.Errorf("commit: %w", pgx.ErrTxCommitRollback))
		return false
	}
	return true
}

// release ends an Update: it rolls back what was not committed (fn failed
// or panicked) and gives the connection back to the pool, which closes it
// rather than keep one that is still in a transaction.
// Only the first call does anything.
func (t *pgTx) release() {
	if t.conn == nil {
		return
	}
	pc := t.conn.Conn().PgConn()
	if t.begun && !pc.IsClosed() && pc.TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(context.Background(), stmtTimeout)
		t.conn.Exec(ctx, "ROLLBACK")
		cancel()
	}
	t.conn.Release()
	t.conn = nil
}

// queryRow runs a query of at most one row and hands the row to scan: in a
// View on its transaction, in an Update in one batch after the statements
// queued before it.
func (t *pgTx) queryRow(scan func(pgx.Row) error, sql string, args ...any) bool {
	if t.writable {
		return t.send(func(b *pgx.Batch) { b.Queue(sql, args...).QueryRow(scan) })
	}
	return t.exec(func(ctx context.Context, tx pgx.Tx) error { return scan(tx.QueryRow(ctx, sql, args...)) })
}

// query is queryRow for a query of many rows: each reads them (rows.Next).
func (t *pgTx) query(each func(pgx.Rows) error, sql string, args ...any) bool {
	if t.writable {
		return t.send(func(b *pgx.Batch) { b.Queue(sql, args...).Query(each) })
	}
	return t.exec(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if err := each(rows); err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
}

// exec runs one step of a View with its own timeout, beginning the View's
// transaction first. It returns false (and does nothing) once the
// transaction has failed.
func (t *pgTx) exec(step func(ctx context.Context, tx pgx.Tx) error) bool {
	if t.err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(t.p.ctx, stmtTimeout)
	defer cancel()
	if t.tx == nil {
		tx, err := t.p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			t.fail(err)
			return false
		}
		t.tx = tx
	}
	if err := step(ctx, t.tx); err != nil {
		t.fail(err)
		return false
	}
	t.p.noteOK()
	return true
}

func (t *pgTx) fail(err error) {
	t.p.noteErr(err)
	if t.err == nil {
		t.err = fmt.Errorf("store: postgres: %w", err)
	}
}

// open is the bucket name for fn, or nil when it does not exist. In an
// Update it first takes the bucket's writer lock. Once the transaction has
// failed, it is a bucket that reads nothing and refuses writes, so that
// owners who expect a bucket to exist do not crash on nil (Update and View
// return the failure whatever fn returns).
func (t *pgTx) open(name []byte) *pgBucket {
	n := string(name)
	if b, ok := t.buckets[n]; ok {
		return b
	}
	name = bytes.Clone(name) // queued statements keep it
	dead := &pgBucket{t: t, name: name}
	if t.writable {
		b, ok := t.openLocked(name)
		if !ok {
			return dead
		}
		t.buckets[n] = b
		return b
	}
	if t.err != nil {
		return dead
	}
	b := &pgBucket{t: t, name: name}
	if m := t.p.mirrors[n]; m != nil && t.p.mirrorsServe() {
		b.snap = m.snapshot()
		if !b.snap.exists {
			b = nil
		}
		t.buckets[n] = b
		return b
	}
	if _, ok := t.p.known.Load(n); ok {
		t.buckets[n] = b
		return b
	}
	var exists bool
	if !t.queryRow(func(row pgx.Row) error { return row.Scan(&exists) },
		"SELECT EXISTS (SELECT 1 FROM kv_buckets WHERE name = $1)", name) {
		return dead
	}
	if !exists {
		b = nil
	} else {
		t.p.known.Store(n, struct{}{})
	}
	t.buckets[n] = b
	return b
}

// openLocked takes bucket name's lock in an Update and reads, in the same
// round trip, whether it exists and its sequence, which nobody else can
// move until this transaction ends. The bucket is nil when it does not
// exist; ok is false when the transaction failed.
func (t *pgTx) openLocked(name []byte) (b *pgBucket, ok bool) {
	if !t.lock(string(name)) {
		return nil, false
	}
	b = &pgBucket{t: t, name: name}
	if !t.queryRow(func(row pgx.Row) error {
		err := row.Scan(&b.seq)
		if errors.Is(err, pgx.ErrNoRows) {
			b = nil
			return nil
		}
		return err
	}, "SELECT seq FROM kv_buckets WHERE name = $1", name) {
		return nil, false
	}
	return b, true
}

// lock queues the writers' lock of bucket name in an Update (once): it is
// taken before the statement that follows it in the batch.
func (t *pgTx) lock(name string) bool {
	if _, ok := t.buckets[name]; ok {
		return t.err == nil
	}
	return t.queue("SELECT pg_advisory_xact_lock($1)", bucketLock(name))
}

func (t *pgTx) Bucket(name []byte) Bucket {
	if b := t.open(name); b != nil {
		return b
	}
	return nil // an untyped nil, so that owners' `b == nil` holds
}

func (t *pgTx) CreateBucketIfNotExists(name []byte) (Bucket, error) {
	if !t.writable {
		return nil, bolt.ErrTxNotWritable
	}
	if len(name) == 0 {
		return nil, bolt.ErrBucketNameRequired
	}
	if b := t.open(name); t.err != nil {
		return nil, t.err
	} else if b != nil {
		return b, nil
	}
	name = bytes.Clone(name)
	// No other writer can make it meanwhile: open took its lock.
	if !t.queue("INSERT INTO kv_buckets (name) VALUES ($1) ON CONFLICT DO NOTHING", name) {
		return nil, t.err
	}
	n := string(name)
	b := &pgBucket{t: t, name: name}
	t.buckets[n] = b
	t.created = append(t.created, n)
	if t.p.mirrors[n] != nil {
		t.reload[n] = true
	}
	return b, nil
}

func (t *pgTx) DeleteBucket(name []byte) error {
	if !t.writable {
		return bolt.ErrTxNotWritable
	}
	n := string(name)
	name = bytes.Clone(name)
	if !t.lock(n) {
		return t.err
	}
	var deleted int64
	if !t.send(func(b *pgx.Batch) {
		// The keys go with it (ON DELETE CASCADE), the sequence too.
		b.Queue("DELETE FROM kv_buckets WHERE name = $1", name).Exec(func(tag pgconn.CommandTag) error {
			deleted = tag.RowsAffected()
			return nil
		})
	}) {
		return t.err
	}
	if deleted == 0 {
		return ErrBucketNotFound
	}
	t.buckets[n] = nil // its sequence is not written at commit
	t.forgotten = append(t.forgotten, n)
	if t.p.mirrors[n] != nil {
		t.reload[n] = true
	}
	return nil
}

// committed brings this node's memory up to date with the transaction, so
// that the node sees its own writes as soon as Update returns.
func (t *pgTx) committed() {
	for _, n := range t.forgotten {
		t.p.known.Delete(n)
	}
	for _, n := range t.created {
		t.p.known.Store(n, struct{}{})
	}
	for n, keys := range t.written {
		if len(keys) > refreshKeysMax {
			t.reload[n] = true
		}
	}
	// Errors are left to the listener: it hears of these keys too, and
	// reloads everything when it has lost the database.
	for n := range t.reload {
		t.p.mirrors[n].reload(t.p)
	}
	for n, keys := range t.written {
		if !t.reload[n] {
			for k := range keys {
				t.p.mirrors[n].refresh(t.p, []byte(k))
			}
		}
	}
}

// pgBucket is a bucket in a transaction. In a View of a cached bucket snap
// is the mirror's content and nothing is read from the database.
type pgBucket struct {
	t    *pgTx
	name []byte
	snap *snapshot
	// In an Update: the sequence, read when the bucket was opened, and
	// whether NextSequence or SetSequence moved it (written at commit).
	seq      int64
	seqMoved bool
}

func (b *pgBucket) Get(key []byte) []byte {
	if b.snap != nil {
		return b.snap.get(key)
	}
	var v []byte
	b.t.queryRow(func(row pgx.Row) error {
		err := row.Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			v = nil
			return nil
		}
		if err == nil && v == nil {
			v = []byte{} // a value, if empty
		}
		return err
	}, "SELECT value FROM kv WHERE bucket = $1 AND key = $2", b.name, key)
	return v
}

// write checks and records a write of key before it is queued.
func (b *pgBucket) write(key []byte) error {
	if !b.t.writable {
		return bolt.ErrTxNotWritable
	}
	if len(key) == 0 {
		return bolt.ErrKeyRequired
	}
	if len(key) > bolt.MaxKeySize {
		return bolt.ErrKeyTooLarge
	}
	if b.t.err != nil {
		return b.t.err
	}
	if n := string(b.name); b.t.p.mirrors[n] != nil {
		if b.t.written[n] == nil {
			b.t.written[n] = map[string]bool{}
		}
		b.t.written[n][string(key)] = true
	}
	return nil
}

// Put queues the write: the caller may reuse key and value at once.
func (b *pgBucket) Put(key, value []byte) error {
	if err := b.write(key); err != nil {
		return err
	}
	value = bytes.Clone(value)
	if value == nil {
		value = []byte{} // pgx sends a nil slice as NULL
	}
	if !b.t.queue(`INSERT INTO kv (bucket, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value`, b.name, bytes.Clone(key), value) {
		return b.t.err
	}
	return nil
}

func (b *pgBucket) Delete(key []byte) error {
	if err := b.write(key); err != nil {
		return err
	}
	if !b.t.queue("DELETE FROM kv WHERE bucket = $1 AND key = $2", b.name, bytes.Clone(key)) {
		return b.t.err
	}
	return nil
}

func (b *pgBucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return b.t.err
}

func (b *pgBucket) Cursor() Cursor {
	if b.snap != nil {
		return &snapCursor{s: b.snap}
	}
	return &pgCursor{b: b}
}

// NextSequence counts in memory: the Update holds the bucket's lock, so
// the sequence read when it opened the bucket is still the latest.
func (b *pgBucket) NextSequence() (uint64, error) {
	if !b.t.writable {
		return 0, bolt.ErrTxNotWritable
	}
	if b.t.err != nil {
		return 0, b.t.err
	}
	b.seq++
	b.seqMoved = true
	return uint64(b.seq), nil
}

func (b *pgBucket) Sequence() uint64 {
	if b.t.writable {
		return uint64(b.seq)
	}
	var seq int64
	b.t.queryRow(func(row pgx.Row) error {
		err := row.Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	}, "SELECT seq FROM kv_buckets WHERE name = $1", b.name)
	return uint64(seq)
}

func (b *pgBucket) SetSequence(v uint64) error {
	if !b.t.writable {
		return bolt.ErrTxNotWritable
	}
	if b.t.err != nil {
		return b.t.err
	}
	b.seq, b.seqMoved = int64(v), true
	return nil
}

func (b *pgBucket) KeyN() int {
	if b.snap != nil {
		return len(b.snap.keys)
	}
	var n int
	b.t.queryRow(func(row pgx.Row) error { return row.Scan(&n) },
		"SELECT count(*) FROM kv WHERE bucket = $1", b.name)
	return n
}

// pgCursor reads a bucket's keys a page at a time.
type pgCursor struct {
	b    *pgBucket
	page []kvPair
	i    int
	more bool // the page was full: there may be keys after it
}

type kvPair struct{ k, v []byte }

// load reads the page of keys from from on (after from when after).
func (c *pgCursor) load(from []byte, after bool) (key, value []byte) {
	c.page, c.i, c.more = c.page[:0], 0, false
	q := "SELECT key, value FROM kv WHERE bucket = $1 AND key >= $2 ORDER BY key LIMIT $3"
	if after {
		q = "SELECT key, value FROM kv WHERE bucket = $1 AND key > $2 ORDER BY key LIMIT $3"
	}
	if from == nil {
		from = []byte{}
	}
	ok := c.b.t.query(func(rows pgx.Rows) error {
		for rows.Next() {
			var p kvPair
			if err := rows.Scan(&p.k, &p.v); err != nil {
				return err
			}
			if p.v == nil {
				p.v = []byte{}
			}
			c.page = append(c.page, p)
		}
		return nil
	}, q, c.b.name, from, pageSize)
	if !ok {
		c.page = c.page[:0]
		return nil, nil
	}
	c.more = len(c.page) == pageSize
	return c.current()
}

func (c *pgCursor) current() (key, value []byte) {
	if c.i >= len(c.page) {
		return nil, nil
	}
	return c.page[c.i].k, c.page[c.i].v
}

func (c *pgCursor) First() (key, value []byte)           { return c.load(nil, false) }
func (c *pgCursor) Seek(seek []byte) (key, value []byte) { return c.load(seek, false) }

func (c *pgCursor) Next() (key, value []byte) {
	if c.i >= len(c.page) {
		return nil, nil // past the end (or never positioned)
	}
	c.i++
	if c.i < len(c.page) {
		return c.current()
	}
	if !c.more {
		return nil, nil
	}
	return c.load(c.page[len(c.page)-1].k, true)
}
