package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// pageSize is how many keys ForEach and cursors read per query.
const pageSize = 256

// refreshKeysMax is how many keys of a cached bucket an Update may write
// before its mirror is reloaded whole after commit rather than key by key.
const refreshKeysMax = 64

// pgTx is a transaction of the Postgres store. Its first failed statement
// is kept (err): PostgreSQL has aborted the transaction by then, so every
// later operation does nothing (reads return nil), and Update or View
// return it.
type pgTx struct {
	p        *Postgres
	tx       pgx.Tx // nil in a View until something is read from the database
	writable bool
	err      error

	buckets map[string]*pgBucket // the buckets fn touched, by name (nil: missing)
	// Of the cached buckets: the keys written (re-read into the mirror
	// after commit), and whole buckets created or deleted (reloaded).
	written   map[string]map[string]bool
	reload    map[string]bool
	created   []string // buckets to remember as existing after commit
	forgotten []string // buckets to forget after commit
}

func newPgTx(p *Postgres, tx pgx.Tx, writable bool) *pgTx {
	return &pgTx{p: p, tx: tx, writable: writable, buckets: map[string]*pgBucket{},
		written: map[string]map[string]bool{}, reload: map[string]bool{}}
}

func (t *pgTx) Writable() bool { return t.writable }

// exec runs one database step with its own timeout. It returns false (and
// does nothing) once the transaction has failed.
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
	dead := &pgBucket{t: t, name: name}
	if !t.lock(n) {
		return dead
	}
	b := &pgBucket{t: t, name: name}
	if !t.writable {
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
	}
	var exists bool
	if !t.exec(func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM kv_buckets WHERE name = $1)", name).Scan(&exists)
	}) {
		return dead
	}
	if !exists {
		b = nil
	} else if !t.writable {
		t.p.known.Store(n, struct{}{})
	}
	t.buckets[n] = b
	return b
}

// lock takes the writers' lock of bucket name in an Update (once).
func (t *pgTx) lock(name string) bool {
	if !t.writable {
		return t.err == nil
	}
	if _, ok := t.buckets[name]; ok {
		return t.err == nil
	}
	return t.exec(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", bucketLock(name))
		return err
	})
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
	if !t.exec(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO kv_buckets (name) VALUES ($1) ON CONFLICT DO NOTHING", name)
		return err
	}) {
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
	if !t.lock(n) {
		return t.err
	}
	var deleted int64
	if !t.exec(func(ctx context.Context, tx pgx.Tx) error {
		// The keys go with it (ON DELETE CASCADE).
		tag, err := tx.Exec(ctx, "DELETE FROM kv_buckets WHERE name = $1", name)
		deleted = tag.RowsAffected()
		return err
	}) {
		return t.err
	}
	if deleted == 0 {
		return ErrBucketNotFound
	}
	t.buckets[n] = nil
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
}

func (b *pgBucket) Get(key []byte) []byte {
	if b.snap != nil {
		return b.snap.get(key)
	}
	var v []byte
	b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT value FROM kv WHERE bucket = $1 AND key = $2", b.name, key).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			v = nil
			return nil
		}
		if err == nil && v == nil {
			v = []byte{} // a value, if empty
		}
		return err
	})
	return v
}

// write checks and records a write of key before it is made.
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

func (b *pgBucket) Put(key, value []byte) error {
	if err := b.write(key); err != nil {
		return err
	}
	if value == nil {
		value = []byte{} // pgx sends a nil slice as NULL
	}
	if !b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO kv (bucket, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value`, b.name, key, value)
		return err
	}) {
		return b.t.err
	}
	return nil
}

func (b *pgBucket) Delete(key []byte) error {
	if err := b.write(key); err != nil {
		return err
	}
	if !b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM kv WHERE bucket = $1 AND key = $2", b.name, key)
		return err
	}) {
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

func (b *pgBucket) NextSequence() (uint64, error) {
	if !b.t.writable {
		return 0, bolt.ErrTxNotWritable
	}
	var seq int64
	if !b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, "UPDATE kv_buckets SET seq = seq + 1 WHERE name = $1 RETURNING seq", b.name).Scan(&seq)
	}) {
		return 0, b.t.err
	}
	return uint64(seq), nil
}

func (b *pgBucket) Sequence() uint64 {
	var seq int64
	b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT seq FROM kv_buckets WHERE name = $1", b.name).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	return uint64(seq)
}

func (b *pgBucket) SetSequence(v uint64) error {
	if !b.t.writable {
		return bolt.ErrTxNotWritable
	}
	if !b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE kv_buckets SET seq = $2 WHERE name = $1", b.name, int64(v))
		return err
	}) {
		return b.t.err
	}
	return nil
}

func (b *pgBucket) KeyN() int {
	if b.snap != nil {
		return len(b.snap.keys)
	}
	var n int
	b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM kv WHERE bucket = $1", b.name).Scan(&n)
	})
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
	ok := c.b.t.exec(func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, c.b.name, from, pageSize)
		if err != nil {
			return err
		}
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
		return rows.Err()
	})
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
