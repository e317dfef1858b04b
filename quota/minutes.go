package quota

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// The per-minute layout (commit aa36f44, format version 2 in effect, though
// it stored no version) kept one nested bucket per user in the "quota"
// bucket, named by the login, holding one key per minute with sends:
//
//	key    the unix minute, 8 bytes big-endian with the sign bit flipped
//	value  that minute's count, 4 bytes big-endian, at least 1
//
// Open converts such buckets to hour keys (see migrate). They are told
// apart by being nested buckets: the hour layout has only plain keys.

func keyMinute(k []byte) (int64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("%w: key of %d bytes", errStored, len(k))
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), nil
}

func valueCount(v []byte) (int, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: value of %d bytes", errStored, len(v))
	}
	n := binary.BigEndian.Uint32(v)
	if n == 0 || n > maxBucketCount {
		return 0, fmt.Errorf("%w: count %d out of range", errStored, n)
	}
	return int(n), nil
}

// readMinutes returns every minute stored in a user's bucket of the
// per-minute layout, oldest first. It rejects anything that layout would
// not have written, so damage is reported, not half-read.
func readMinutes(ub *bbolt.Bucket) (*window, error) {
	w := &window{}
	err := ub.ForEach(func(k, v []byte) error {
		if v == nil {
			return fmt.Errorf("%w: nested bucket %x", errStored, k)
		}
		minute, err := keyMinute(k)
		if err != nil {
			return err
		}
		n, err := valueCount(v)
		if err != nil {
			return fmt.Errorf("minute %d: %w", minute, err)
		}
		w.b = append(w.b, bucket{minute: minute, n: n})
		return nil
	})
	return w, err
}
