package store

import (
	bolt "go.etcd.io/bbolt"
)

// Bolt is the store in a single relay's bbolt file, shared with its queue.
func Bolt(db *bolt.DB) DB { return boltDB{db} }

// BoltTx is a transaction of that file as a Tx: owners that write in the
// queue's own transaction (a message's events, queue.TxHook) take it.
func BoltTx(tx *bolt.Tx) Tx { return boltTx{tx} }

type boltDB struct{ db *bolt.DB }

func (d boltDB) Update(fn func(Tx) error) error {
	return d.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (d boltDB) View(fn func(Tx) error) error {
	return d.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (boltDB) Watch(string, func([]byte)) {}
func (boltDB) Shared() bool               { return false }

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Bucket(name []byte) Bucket {
	if b := t.tx.Bucket(name); b != nil {
		return boltBucket{b}
	}
	return nil // an untyped nil, so that owners' `b == nil` holds
}

func (t boltTx) CreateBucketIfNotExists(name []byte) (Bucket, error) {
	b, err := t.tx.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return boltBucket{b}, nil
}

func (t boltTx) DeleteBucket(name []byte) error {
	if err := t.tx.DeleteBucket(name); err == bolt.ErrBucketNotFound {
		return ErrBucketNotFound
	} else {
		return err
	}
}

func (t boltTx) Writable() bool { return t.tx.Writable() }

type boltBucket struct{ b *bolt.Bucket }

func (b boltBucket) Get(key []byte) []byte                    { return b.b.Get(key) }
func (b boltBucket) Put(key, value []byte) error              { return b.b.Put(key, value) }
func (b boltBucket) Delete(key []byte) error                  { return b.b.Delete(key) }
func (b boltBucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }
func (b boltBucket) Cursor() Cursor                           { return b.b.Cursor() }
func (b boltBucket) NextSequence() (uint64, error)            { return b.b.NextSequence() }
func (b boltBucket) Sequence() uint64                         { return b.b.Sequence() }
func (b boltBucket) SetSequence(v uint64) error               { return b.b.SetSequence(v) }
func (b boltBucket) KeyN() int                                { return b.b.Stats().KeyN }
