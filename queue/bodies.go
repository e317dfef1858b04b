package queue

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Large bodies are stored one per nested bucket of the "bodies" bucket
// (the bucket named by the message ID, holding the body under bodyKey),
// small ones as plain values keyed by the message ID.
//
// Why: bbolt keeps a leaf node together until it holds more than four
// keys, so values larger than a page share their leaf with up to three
// neighbours, and appending a message (IDs ascend) rewrote the last leaf
// whole: every new 256 KiB body copied the two or three bodies before it
// into new pages and wrote them again, and read their mapped pages to do
// so. In a bucket of its own, a body is written once; appending touches
// only the parent's small leaf of bucket headers. A bucket costs whole
// pages, though (a 4 KiB body would take 8 KiB of file), and sharing a
// leaf costs little when the neighbours are small: bodies under
// ownBucketFrom stay plain values, as earlier versions stored every body.
var bodyKey = []byte("body")

// ownBucketFrom is the size from which a body gets a bucket of its own.
const ownBucketFrom = 16 << 10

// putBody stores body for id in tx.
func putBody(tx *bolt.Tx, id string, body []byte) error {
	if len(body) < ownBucketFrom {
		return tx.Bucket(bodiesBucket).Put([]byte(id), body)
	}
	b, err := tx.Bucket(bodiesBucket).CreateBucket([]byte(id))
	if err != nil {
		return err
	}
	return b.Put(bodyKey, body)
}

// storedBody returns id's body as stored in tx (a slice valid only in tx),
// or nil when there is none.
func storedBody(tx *bolt.Tx, id []byte) []byte {
	bodies := tx.Bucket(bodiesBucket)
	if b := bodies.Bucket(id); b != nil {
		return b.Get(bodyKey)
	}
	return bodies.Get(id)
}

// deleteBody removes id's body from tx, in either layout; a missing body
// is no error.
func deleteBody(tx *bolt.Tx, id []byte) error {
	bodies := tx.Bucket(bodiesBucket)
	err := bodies.DeleteBucket(id)
	if errors.Is(err, bolt.ErrBucketNotFound) || errors.Is(err, bolt.ErrIncompatibleValue) {
		return bodies.Delete(id)
	}
	return err
}
