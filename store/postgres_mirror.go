package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The mirrors of the cached buckets and the listener that keeps them
// current.
//
// A mirror is an immutable snapshot replaced whole on each change (copy on
// write: cached buckets are small and read far more often than written), so
// a View reads one consistent version without locks. Changes arrive as
// NOTIFY payloads "hex(bucket) hex(key)" from the trigger on kv
// (migrations/0001_kv.sql); the listener re-reads the key rather than
// trusting an order of notifications, and a mirror's fetch and apply happen
// under its mutex, so an older value never replaces a newer one.

// mirror is a cached bucket's content in memory.
type mirror struct {
	name string
	mu   sync.Mutex // serializes refreshes (fetch and apply together)
	snap atomicSnapshot
}

type atomicSnapshot struct {
	mu sync.RWMutex
	s  *snapshot
}

// snapshot is a bucket's content at one moment; never modified.
type snapshot struct {
	exists bool
	keys   []string // in byte order
	values map[string][]byte
}

var emptySnapshot = &snapshot{values: map[string][]byte{}}

func (m *mirror) snapshot() *snapshot {
	m.snap.mu.RLock()
	defer m.snap.mu.RUnlock()
	if m.snap.s == nil {
		return emptySnapshot
	}
	return m.snap.s
}

func (m *mirror) set(s *snapshot) {
	m.snap.mu.Lock()
	m.snap.s = s
	m.snap.mu.Unlock()
}

func (s *snapshot) get(key []byte) []byte { return s.values[string(key)] }

// with is s with key set to value (deleted when value is nil).
func (s *snapshot) with(key string, value []byte) *snapshot {
	n := &snapshot{exists: true, values: make(map[string][]byte, len(s.values)+1)}
	for k, v := range s.values {
		n.values[k] = v
	}
	i := sort.SearchStrings(s.keys, key)
	found := i < len(s.keys) && s.keys[i] == key
	switch {
	case value != nil:
		n.values[key] = value
		if found {
			n.keys = s.keys
		} else {
			n.keys = append(append(append(make([]string, 0, len(s.keys)+1), s.keys[:i]...), key), s.keys[i:]...)
		}
	case found:
		delete(n.values, key)
		n.keys = append(append(make([]string, 0, len(s.keys)-1), s.keys[:i]...), s.keys[i+1:]...)
	default:
		n.keys = s.keys
	}
	return n
}

// refresh re-reads one key from the database into the mirror (and whether
// the bucket still exists: another node may have deleted it).
func (m *mirror) refresh(p *Postgres, key []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, stmtTimeout)
	defer cancel()
	var found bool
	var v []byte
	err := p.pool.QueryRow(ctx, `SELECT kv.key IS NOT NULL, coalesce(kv.value, '')
		FROM kv_buckets b LEFT JOIN kv ON kv.bucket = b.name AND kv.key = $2
		WHERE b.name = $1`, []byte(m.name), key).Scan(&found, &v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		p.noteOK()
		m.set(emptySnapshot) // the bucket is gone
		return nil
	case err != nil:
		p.noteErr(err)
		return err
	}
	p.noteOK()
	if !found {
		v = nil
	} else if v == nil {
		v = []byte{}
	}
	m.set(m.snapshot().with(string(key), v))
	return nil
}

// reload reads the whole bucket into the mirror.
func (m *mirror) reload(p *Postgres) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, stmtTimeout)
	defer cancel()
	s := &snapshot{values: map[string][]byte{}}
	// One transaction, so that existence and keys are of one moment.
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM kv_buckets WHERE name = $1)", []byte(m.name)).Scan(&s.exists); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT key, value FROM kv WHERE bucket = $1 ORDER BY key", []byte(m.name))
		if err != nil {
			return err
		}
		for rows.Next() {
			var k, v []byte
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			if v == nil {
				v = []byte{}
			}
			s.keys = append(s.keys, string(k))
			s.values[string(k)] = v
		}
		return rows.Err()
	})
	if err != nil {
		p.noteErr(err)
		return err
	}
	p.noteOK()
	m.set(s)
	return nil
}

// Watch calls fn after a key of bucket changed, on the listener's
// goroutine (keep fn short), after the bucket's mirror (if it is cached)
// has the change. It registers the bucket for notifications.
func (p *Postgres) Watch(bucket string, fn func(key []byte)) {
	p.watchMu.Lock()
	p.watchers[bucket] = append(p.watchers[bucket], fn)
	registered := p.notify[bucket]
	p.notify[bucket] = true
	p.watchMu.Unlock()
	if !registered {
		// Failing here is no loss: the listener registers every watched
		// bucket again when it reconnects.
		ctx, cancel := context.WithTimeout(p.ctx, stmtTimeout)
		defer cancel()
		if _, err := p.pool.Exec(ctx, "INSERT INTO kv_notify (bucket) VALUES ($1) ON CONFLICT DO NOTHING", []byte(bucket)); err != nil {
			p.noteErr(err)
		}
	}
}

// connectListener opens the listening connection, registers the watched
// buckets and loads every mirror (after LISTEN, so no change falls in
// between).
func (p *Postgres) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.pool.Config().ConnConfig)
	if err != nil {
		return nil, err
	}
	if err := p.setupListener(ctx, conn); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

func (p *Postgres) setupListener(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "LISTEN outbound_kv"); err != nil {
		return err
	}
	p.watchMu.Lock()
	var names [][]byte
	for n := range p.notify {
		names = append(names, []byte(n))
	}
	p.watchMu.Unlock()
	if len(names) > 0 {
		if _, err := conn.Exec(ctx, "INSERT INTO kv_notify (bucket) SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING", names); err != nil {
			return err
		}
	}
	for _, m := range p.mirrors {
		if err := m.reload(p); err != nil {
			return err
		}
	}
	return nil
}

// listen receives the notifications, reconnecting with backoff (1 s
// doubling to 30 s) when the connection is lost. After a reconnection the
// mirrors are reloaded and every watcher hears key nil: changes were
// missed.
func (p *Postgres) listen(conn *pgx.Conn) {
	defer p.wg.Done()
	for {
		err := p.receive(conn)
		conn.Close(context.Background())
		if p.ctx.Err() != nil {
			return
		}
		p.setHealth(func() { p.listening, p.lostAt = false, time.Now() })
		p.log.Debug("store: the PostgreSQL listener lost its connection", "err", err)
		if conn = p.reconnect(); conn == nil {
			return // closed
		}
		p.setHealth(func() { p.listening = true })
		p.watchMu.Lock()
		var all []func([]byte)
		for _, fns := range p.watchers {
			all = append(all, fns...)
		}
		p.watchMu.Unlock()
		for _, fn := range all {
			fn(nil)
		}
	}
}

// reconnect connects the listener again, with backoff, or at once when
// another query found the database back (kick): the mirrors reload on
// connecting, and until then they serve what they had.
func (p *Postgres) reconnect() *pgx.Conn {
	backoff := time.Second
	for {
		select {
		case <-p.ctx.Done():
			return nil
		case <-time.After(backoff):
		case <-p.kick:
		}
		ctx, cancel := context.WithTimeout(p.ctx, stmtTimeout)
		conn, err := p.connectListener(ctx)
		cancel()
		if err == nil {
			return conn
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// receive handles notifications until the connection fails.
func (p *Postgres) receive(conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(p.ctx)
		if err != nil {
			return err
		}
		bucket, key, ok := parseNotification(n.Payload)
		if !ok {
			continue
		}
		if m := p.mirrors[bucket]; m != nil {
			if key == nil {
				err = m.reload(p)
			} else {
				err = m.refresh(p, key)
			}
			if err != nil {
				// The pool cannot reach the database either: start over
				// (reconnecting reloads everything).
				return err
			}
		}
		p.watchMu.Lock()
		fns := append([]func([]byte){}, p.watchers[bucket]...)
		p.watchMu.Unlock()
		for _, fn := range fns {
			fn(key)
		}
	}
}

// parseNotification splits "hex(bucket) hex(key)"; key is nil when the
// trigger left it out (too long: the whole bucket may have changed).
func parseNotification(payload string) (bucket string, key []byte, ok bool) {
	hb, hk, found := strings.Cut(payload, " ")
	if !found {
		return "", nil, false
	}
	b, err := hex.DecodeString(hb)
	if err != nil {
		return "", nil, false
	}
	if hk == "" {
		return string(b), nil, true
	}
	key, err = hex.DecodeString(hk)
	if err != nil || len(key) == 0 {
		return "", nil, false
	}
	return string(b), key, true
}

// snapCursor walks a mirror's snapshot.
type snapCursor struct {
	s *snapshot
	i int
}

func (c *snapCursor) at() (key, value []byte) {
	if c.i >= len(c.s.keys) {
		return nil, nil
	}
	k := c.s.keys[c.i]
	return []byte(k), c.s.values[k]
}

func (c *snapCursor) First() (key, value []byte) { c.i = 0; return c.at() }

func (c *snapCursor) Seek(seek []byte) (key, value []byte) {
	c.i = sort.Search(len(c.s.keys), func(i int) bool { return bytes.Compare([]byte(c.s.keys[i]), seek) >= 0 })
	return c.at()
}

func (c *snapCursor) Next() (key, value []byte) {
	if c.i < len(c.s.keys) {
		c.i++
	}
	return c.at()
}
