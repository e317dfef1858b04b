package sendapi

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/queue"
	"outbound/store"
)

// On disk, bucket "send-api-idempotency" maps user + NUL + Idempotency-Key
// to the JSON form of answer: the first 202 given to a request with that
// key, written in the transaction that queues its message (so the answer
// exists exactly when the message does). A retry within IdempotencyTTL
// reads it back and queues nothing; Purge deletes older ones.
var idempotencyBucket = []byte("send-api-idempotency")

// IdempotencyTTL is how long an Idempotency-Key's answer is kept.
const IdempotencyTTL = 24 * time.Hour

// answer is a stored first answer.
type answer struct {
	// Request is the SHA-256 of the request body, so that a key reused
	// for another request is told apart from a retry.
	Request []byte `json:"request"`
	// Status and Body are the HTTP answer given.
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	// Created is when it was given; read by lookup and Purge.
	Created time.Time `json:"created"`
}

type idempotency struct {
	db  store.DB
	now func() time.Time
}

func newIdempotency(db store.DB, now func() time.Time) (*idempotency, error) {
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(idempotencyBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating %s bucket: %w", idempotencyBucket, err)
	}
	return &idempotency{db: db, now: now}, nil
}

func idemKey(user, key string) []byte { return []byte(user + "\x00" + key) }

func requestHash(body []byte) []byte {
	h := sha256.Sum256(body)
	return h[:]
}

// lookup returns the answer stored for user's key, if one younger than
// IdempotencyTTL exists.
func (s *idempotency) lookup(user, key string) (*answer, error) {
	var a *answer
	err := s.db.View(func(tx store.Tx) error {
		v := tx.Bucket(idempotencyBucket).Get(idemKey(user, key))
		if v == nil {
			return nil
		}
		a = new(answer)
		return json.Unmarshal(v, a)
	})
	if err != nil || a == nil || s.now().Sub(a.Created) >= IdempotencyTTL {
		return nil, err
	}
	return a, nil
}

// record returns the write that stores a as user's key's answer, for the
// queue transaction.
func (s *idempotency) record(user, key string, a *answer) queue.TxHook {
	return func(tx *bolt.Tx) error {
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return store.BoltTx(tx).Bucket(idempotencyBucket).Put(idemKey(user, key), v)
	}
}

// Purge deletes the answers older than IdempotencyTTL.
func (s *idempotency) Purge() error {
	cutoff := s.now().Add(-IdempotencyTTL)
	return s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(idempotencyBucket)
		var old [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var a answer
			if json.Unmarshal(v, &a) != nil || a.Created.Before(cutoff) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
