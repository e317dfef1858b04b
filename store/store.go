// Package store is where the relay keeps its shared state, everything that
// is not the message queue: users, operators, API keys, smarthosts, DKIM
// keys, templates, suppressions, webhooks, the event log and captured
// messages. The storage owners (auth, smarthost, dkim, ...) keep their
// records in named buckets of keys and values through the interfaces
// below, which have two implementations:
//
//   - Bolt: the one bbolt file of a single relay (the default). It is a
//     thin veneer over bbolt, which the interfaces copy, so behaviour is
//     exactly bbolt's.
//   - Postgres: a PostgreSQL database that several relay nodes share
//     (postgres.go). Every node keeps its own bbolt queue; what is here is
//     seen by all of them.
//
// The shape is bbolt's on purpose: the owners were written against it, a
// key-value layout moves between the two without translation (`outbound
// store migrate` copies buckets), and the one place where one node's write
// must be exact under races from others, the sending quota, has its own SQL
// (package quota).
package store

import "errors"

// DB is a transactional store of buckets.
//
// Update runs fn in a read-write transaction and commits it when fn
// returns nil. Unlike bbolt's, a Postgres Update may run fn more than once
// (when the database asks to retry a transaction that lost a race), so fn
// must only read and write through tx and memory it resets itself.
// View runs fn in a read-only transaction.
type DB interface {
	Update(fn func(Tx) error) error
	View(fn func(Tx) error) error
	// Watch calls fn, on a goroutine of the store's, after a key of the
	// top-level bucket changed (key nil: perhaps any key, e.g. after the
	// connection to the database was lost and found again). Changes made
	// by this node may be reported too. Bolt never calls it: one process
	// is the only writer, and the owners keep their own memory current.
	Watch(bucket string, fn func(key []byte))
	// Shared says whether other relay nodes use this store too.
	Shared() bool
}

// Tx is a transaction. Its buckets and the values they return are valid
// only until it ends.
type Tx interface {
	// Bucket is the named top-level bucket, or nil when it does not exist.
	Bucket(name []byte) Bucket
	CreateBucketIfNotExists(name []byte) (Bucket, error)
	DeleteBucket(name []byte) error
	// Writable says whether this is an Update.
	Writable() bool
}

// Bucket is a set of keys in byte order, each with a value. (The owners
// need no nested buckets; only the queue, which stays in bbolt, has them.)
//
// Get returns nil for a missing key. Reads cannot
// return errors: a Postgres read that fails makes the whole transaction
// fail (its Update or View returns the error, and nothing is committed), and
// reads nil meanwhile.
type Bucket interface {
	Get(key []byte) []byte
	Put(key, value []byte) error
	Delete(key []byte) error
	// ForEach calls fn for every key in order.
	ForEach(fn func(k, v []byte) error) error
	Cursor() Cursor
	// NextSequence returns the bucket's next integer, starting at 1.
	NextSequence() (uint64, error)
	// Sequence is the last integer NextSequence returned; SetSequence
	// sets it (store migrate carries it over).
	Sequence() uint64
	SetSequence(v uint64) error
	// KeyN counts the keys.
	KeyN() int
}

// Cursor walks a bucket's keys in order. Each method returns nil, nil past
// the end.
type Cursor interface {
	First() (key, value []byte)
	Seek(seek []byte) (key, value []byte)
	Next() (key, value []byte)
}

// Errors of the interfaces, matching bbolt's so owners test for one.
var (
	ErrBucketNotFound = errors.New("bucket not found")
	ErrBucketExists   = errors.New("bucket already exists")
)
