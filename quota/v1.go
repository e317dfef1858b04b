package quota

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
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
// Open converts such records to hour keys (see migrate). They are told
// apart by their first byte: an hour value's is hourFormat.

// formatVersion is the first byte of every version 1 record.
const formatVersion = 1

var errRecord = errors.New("malformed record")

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
