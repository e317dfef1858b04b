package store

// Copy moves buckets from one store to another (`outbound store migrate`:
// a relay's bbolt file into PostgreSQL) and then checks that they arrived.

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// copyBatch is how many keys one transaction reads or writes, so that a
// large bucket (the event log) is many short transactions, not one that
// holds a PostgreSQL connection and all its rows in memory at once.
const copyBatch = 500

// ErrVerify is wrapped by Copy's error when a bucket did not arrive whole.
var ErrVerify = errors.New("verify failed")

// CopyReport is what Copy did to one bucket.
type CopyReport struct {
	Bucket string
	// Missing: src has no such bucket; nothing was done to dst.
	Missing bool
	// SrcKeys were copied (Copied of them, the same number unless an
	// error stopped the copy); DstKeys are in dst afterwards, more than
	// SrcKeys when dst had keys of its own, which Copy leaves.
	SrcKeys, Copied, DstKeys int
	// Sequence is src's NextSequence counter; dst's is at least that.
	Sequence uint64
	// Verified says every key of src is in dst with the same value. When
	// not, Mismatch is the first key that is not (nil when it is the
	// sequence) and Why says what is wrong with it.
	Verified bool
	Mismatch []byte
	Why      string
}

// Copy copies each of the named top-level buckets that src has into dst,
// creating it there when needed: every key and value (overwriting dst's
// value of the same key, leaving dst's other keys) and the sequence
// (dst's becomes the larger of the two). Then it verifies each bucket
// against src. Running it again gives the same dst.
//
// The error wraps ErrVerify when a bucket differs after the copy (its
// report says where); the reports are returned with it.
func Copy(dst, src DB, buckets []string) ([]CopyReport, error) {
	var reports []CopyReport
	for _, name := range buckets {
		r, err := copyBucket(dst, src, name)
		reports = append(reports, r)
		if err != nil {
			return reports, fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	var failed []string
	for i := range reports {
		r := &reports[i]
		if r.Missing {
			continue
		}
		if err := verifyBucket(dst, src, r); err != nil {
			return reports, fmt.Errorf("verifying bucket %s: %w", r.Bucket, err)
		}
		if !r.Verified {
			failed = append(failed, r.Bucket+": "+r.Problem())
		}
	}
	if len(failed) > 0 {
		return reports, fmt.Errorf("%w: %s", ErrVerify, strings.Join(failed, "; "))
	}
	return reports, nil
}

// Problem says what verifying found wrong with the bucket ("" when it
// was verified): the first key, quoted as Go does (keys can be binary),
// and what is wrong with it.
func (r CopyReport) Problem() string {
	switch {
	case r.Verified:
		return ""
	case r.Mismatch != nil:
		return fmt.Sprintf("key %q %s", r.Mismatch, r.Why)
	}
	return r.Why
}

// copyBucket copies one bucket, a batch of keys at a time.
func copyBucket(dst, src DB, name string) (CopyReport, error) {
	r := CopyReport{Bucket: name}
	bname := []byte(name)
	if err := src.View(func(tx Tx) error {
		b := tx.Bucket(bname)
		if b == nil {
			r.Missing = true
			return nil
		}
		r.Sequence = b.Sequence()
		return nil
	}); err != nil || r.Missing {
		return r, err
	}
	// The bucket and its sequence first, so that an empty bucket is
	// created too.
	if err := dst.Update(func(tx Tx) error {
		b, err := tx.CreateBucketIfNotExists(bname)
		if err != nil {
			return err
		}
		if b.Sequence() < r.Sequence {
			return b.SetSequence(r.Sequence)
		}
		return nil
	}); err != nil {
		return r, err
	}
	err := eachBatch(src, bname, func(batch []kv) error {
		r.SrcKeys += len(batch)
		if err := dst.Update(func(tx Tx) error {
			b := tx.Bucket(bname)
			if b == nil {
				return ErrBucketNotFound // deleted since it was created
			}
			for _, p := range batch {
				if err := b.Put(p.k, p.v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		r.Copied += len(batch)
		return nil
	})
	if err != nil {
		return r, err
	}
	return r, dst.View(func(tx Tx) error {
		if b := tx.Bucket(bname); b != nil {
			r.DstKeys = b.KeyN()
		}
		return nil
	})
}

// verifyBucket compares dst's bucket r.Bucket with src's, a batch of src
// keys at a time, and fills r's Verified, Mismatch and Why (r.SrcKeys
// too, counted again: what src holds now).
func verifyBucket(dst, src DB, r *CopyReport) error {
	bname := []byte(r.Bucket)
	r.Verified, r.Mismatch, r.Why = false, nil, ""
	var srcSeq uint64
	if err := src.View(func(tx Tx) error {
		if b := tx.Bucket(bname); b != nil {
			srcSeq = b.Sequence()
		}
		return nil
	}); err != nil {
		return err
	}
	var dstSeq uint64
	dstMissing := false
	if err := dst.View(func(tx Tx) error {
		b := tx.Bucket(bname)
		if b == nil {
			dstMissing = true
			return nil
		}
		dstSeq = b.Sequence()
		r.DstKeys = b.KeyN()
		return nil
	}); err != nil {
		return err
	}
	if dstMissing {
		r.Why = "bucket missing in the destination"
		return nil
	}
	srcKeys := 0
	err := eachBatch(src, bname, func(batch []kv) error {
		srcKeys += len(batch)
		if r.Mismatch != nil {
			return nil // keep counting
		}
		return dst.View(func(tx Tx) error {
			r.Mismatch, r.Why = firstMismatch(tx.Bucket(bname), batch)
			return nil
		})
	})
	if err != nil {
		return err
	}
	r.SrcKeys = srcKeys
	if r.Mismatch == nil && dstSeq < srcSeq {
		r.Why = fmt.Sprintf("sequence %d in the destination, %d in the source", dstSeq, srcSeq)
		return nil
	}
	r.Verified = r.Mismatch == nil
	return nil
}

// firstMismatch is the first key of batch (in order) that b lacks or
// holds with another value, and why. It walks b with one cursor beside
// the batch rather than a Get a key: on PostgreSQL a few reads a batch,
// not one a key.
func firstMismatch(b Bucket, batch []kv) (key []byte, why string) {
	if b == nil {
		return batch[0].k, "missing in the destination" // the bucket went
	}
	c := b.Cursor()
	dk, dv := c.Seek(batch[0].k)
	for _, p := range batch {
		for dk != nil && bytes.Compare(dk, p.k) < 0 {
			dk, dv = c.Next() // a key of dst's own
		}
		switch {
		case dk == nil || !bytes.Equal(dk, p.k):
			return p.k, "missing in the destination"
		case !bytes.Equal(dv, p.v):
			return p.k, "has a different value in the destination"
		}
	}
	return nil, ""
}

type kv struct{ k, v []byte }

// eachBatch calls fn with the keys and values of src's bucket, in order,
// copyBatch of them at a time, each batch read in its own transaction and
// copied out of it (fn runs outside it). A nil value (a nested bucket,
// which only the queue has) is an error: it could not be copied.
func eachBatch(src DB, bucket []byte, fn func([]kv) error) error {
	var after []byte // the last key of the previous batch
	for {
		var batch []kv
		err := src.View(func(tx Tx) error {
			batch = batch[:0] // a Postgres View may run fn again
			b := tx.Bucket(bucket)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for ; k != nil && len(batch) < copyBatch; k, v = c.Next() {
				if v == nil {
					return fmt.Errorf("key %q holds a nested bucket, which cannot be copied", k)
				}
				batch = append(batch, kv{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if err != nil || len(batch) == 0 {
			return err
		}
		if err := fn(batch); err != nil {
			return err
		}
		if len(batch) < copyBatch {
			return nil
		}
		after = batch[len(batch)-1].k
	}
}
