package quota

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.etcd.io/bbolt"
)

// Format version 1 kept one key per user in the "quota" bucket, its value
// the user's whole window, rewritten on every write:
//
//	byte    format version, 1
//	varint  minute of the first bucket, in unix minutes (signed)
//	uvarint its count
//	then for every further bucket, oldest first:
//	uvarint minutes since the previous bucket (at least 1)
//	uvarint its count
//
// Open converts such records to the current layout. They are told apart
// by being plain keys: the current layout has only nested buckets there.

// formatVersion is the first byte of every version 1 record.
const formatVersion = 1

var errRecord = errors.New("malformed record")

// migrateV1 replaces every version 1 record in b by the user's bucket of
// minute keys, leaving out minutes at or before cutoff. It runs in Open's
// transaction, so a data directory is converted whole or not at all; a
// record that cannot be decoded fails Open, as counts that silently
// vanished would let users oversend.
func migrateV1(b *bbolt.Bucket, cutoff int64) error {
	type record struct {
		user string
		w    *window
	}
	var records []record
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a user's bucket: already the current layout
		}
		w, err := decode(v)
		if err != nil {
			return fmt.Errorf("quota: record of user %q: %w", k, err)
		}
		records = append(records, record{string(bytes.Clone(k)), w})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range records {
		// A key and a bucket cannot share a name: delete, then create.
		if err := b.Delete([]byte(r.user)); err != nil {
			return err
		}
		r.w.prune(cutoff)
		if r.w.empty() {
			continue
		}
		ub, err := b.CreateBucket([]byte(r.user))
		if err != nil {
			return err
		}
		ub.FillPercent = userFill
		for _, bk := range r.w.b {
			if err := ub.Put(minuteKey(bk.minute), countValue(bk.n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// decode parses a version 1 record. It rejects anything the version 1
// writer would not have written, so a damaged record is reported, not
// half-read.
func decode(v []byte) (*window, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty", errRecord)
	}
	if v[0] != formatVersion {
		return nil, fmt.Errorf("%w: unknown version %d", errRecord, v[0])
	}
	v = v[1:]
	w := &window{}
	var minute int64
	for len(v) > 0 {
		if len(w.b) == 0 {
			m, k := binary.Varint(v)
			if k <= 0 {
				return nil, fmt.Errorf("%w: bad minute", errRecord)
			}
			v = v[k:]
			minute = m
		} else {
			delta, k := binary.Uvarint(v)
			if k <= 0 {
				return nil, fmt.Errorf("%w: bad minute", errRecord)
			}
			v = v[k:]
			next := minute + int64(delta)
			if delta == 0 || delta > math.MaxInt64 || next < minute {
				return nil, fmt.Errorf("%w: minutes out of order", errRecord)
			}
			minute = next
		}
		n, k := binary.Uvarint(v)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad count", errRecord)
		}
		v = v[k:]
		if n == 0 || n > maxBucketCount {
			return nil, fmt.Errorf("%w: count %d out of range", errRecord, n)
		}
		w.b = append(w.b, bucket{minute: minute, n: int(n)})
	}
	if len(w.b) == 0 {
		return nil, fmt.Errorf("%w: no buckets", errRecord)
	}
	return w, nil
}
