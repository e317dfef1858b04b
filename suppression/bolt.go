package suppression

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"outbound/store"
)

var bucket = []byte("suppressions")

// Bolt is the Store in the shared store (package store): the name is from
// when that was always the bbolt file.
type Bolt struct {
	db    store.DB
	scope Scope
	// expire is how long a bounce or manual suppression lasts.
	expire time.Duration
	now    func() time.Time
}

var _ Store = (*Bolt)(nil)

// DefaultExpire is how long a suppression lasts unless configured: 90 days.
const DefaultExpire = 90 * 24 * time.Hour

// OpenBolt creates the bucket if needed. expire 0 means DefaultExpire; now
// nil means time.Now.
func OpenBolt(db store.DB, scope Scope, expire time.Duration, now func() time.Time) (*Bolt, error) {
	if expire <= 0 {
		expire = DefaultExpire
	}
	if now == nil {
		now = time.Now
	}
	if scope == "" {
		scope = PerUser
	}
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating suppression bucket: %w", err)
	}
	return &Bolt{db: db, scope: scope, expire: expire, now: now}, nil
}

// Scope is the configured scope.
func (b *Bolt) Scope() Scope { return b.scope }

func (b *Bolt) key(user, addr string) []byte {
	if b.scope == RelayWide {
		user = ""
	}
	return []byte(user + "\x00" + normalize(addr))
}

// fill completes a new entry: its times and normalized address.
func (b *Bolt) fill(e *Entry) {
	e.Addr = normalize(e.Addr)
	if e.Created.IsZero() {
		e.Created = b.now()
	}
	if e.Expires.IsZero() && e.Kind != Complaint {
		e.Expires = e.Created.Add(b.expire)
	}
}

// Put suppresses e.Addr in tx, the transaction that stores the delivery
// failure that calls for it (wrap it as a queue.TxHook). It reads only
// memory and may run more than once. A complaint already on the list is
// not replaced by a bounce: it would start to expire.
func (b *Bolt) Put(tx store.Tx, e Entry) error {
	b.fill(&e)
	bk := tx.Bucket(bucket)
	k := b.key(e.User, e.Addr)
	if v := bk.Get(k); v != nil && e.Kind != Complaint {
		var old Entry
		if json.Unmarshal(v, &old) == nil && old.Kind == Complaint {
			return nil
		}
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return bk.Put(k, v)
}

// Add suppresses e.Addr in a transaction of its own.
func (b *Bolt) Add(e Entry) error {
	if e.Kind == "" {
		e.Kind = Manual
	}
	return b.db.Update(func(tx store.Tx) error { return b.Put(tx, e) })
}

// Complained suppresses addr for good after a complaint.
func (b *Bolt) Complained(user, addr, reason, message string) error {
	return b.Add(Entry{User: user, Addr: addr, Kind: Complaint, Reason: reason, Message: message})
}

// Lookup returns the active suppression of addr for user's mail, or nil.
func (b *Bolt) Lookup(user, addr string) (*Entry, error) {
	var e *Entry
	err := b.db.View(func(tx store.Tx) error {
		v := tx.Bucket(bucket).Get(b.key(user, addr))
		if v == nil {
			return nil
		}
		e = new(Entry)
		return json.Unmarshal(v, e)
	})
	if err != nil {
		return nil, err
	}
	if e == nil || !e.Active(b.now()) {
		return nil, nil
	}
	return e, nil
}

// Delete lifts a suppression.
func (b *Bolt) Delete(user, addr string) (bool, error) {
	found := false
	err := b.db.Update(func(tx store.Tx) error {
		k := b.key(user, addr)
		found = tx.Bucket(bucket).Get(k) != nil
		return tx.Bucket(bucket).Delete(k)
	})
	return found, err
}

// List returns the active entries of user's messages ("" for all).
// Expired entries are skipped here and overwritten by the next
// suppression of their address; they are small.
func (b *Bolt) List(user string) ([]Entry, error) {
	out := []Entry{}
	now := b.now()
	err := b.db.View(func(tx store.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		var k, v []byte
		prefix := []byte(nil)
		if user != "" && b.scope == PerUser {
			prefix = []byte(user + "\x00")
			k, v = c.Seek(prefix)
		} else {
			k, v = c.First()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("suppression %q: %w", k, err)
			}
			if !e.Active(now) || (user != "" && e.User != user) {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out, err
}
