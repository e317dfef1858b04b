package quota

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.etcd.io/bbolt"
)

// The on-disk layout (see the package doc): in the "quota" bucket, one
// nested bucket per user, named by the login, holding one key per minute
// with sends.

// maxBucketCount bounds a stored count so that sums over a day cannot
// overflow, whatever the disk says.
const maxBucketCount = math.MaxInt32

// prunePerWrite bounds how many of a user's expired minute keys one write
// deletes. A write adds at most one key, so deleting up to two keeps an
// active user's keys near one day's worth, while the write stays small.
const prunePerWrite = 2

// userFill is the FillPercent of a user's bucket. Minutes are added in
// order, nearly always after the last, so pages can be split full rather
// than half full (bbolt's default, made for random inserts), which nearly
// halves the space a busy day takes. It is not stored: every transaction
// that writes a user's bucket sets it.
const userFill = 1.0

var errStored = errors.New("malformed count")

// minuteKey is the key of minute's count: the minute big-endian with the
// sign bit flipped, so that keys sort by time even for minutes before
// 1970 (a broken clock), and Open can delete a user's expired keys as the
// prefix of its bucket.
func minuteKey(minute int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(minute)^(1<<63))
}

func keyMinute(k []byte) (int64, error) {
	if len(k) != 8 {
		return 0, fmt.Errorf("%w: key of %d bytes", errStored, len(k))
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), nil
}

// countValue is the stored form of a minute's count: 4 bytes big-endian,
// so every write puts the same number of bytes. Counts above
// maxBucketCount (only possible with limits far above the operator
// ceiling) are stored as maxBucketCount, which still refuses any sane
// limit.
func countValue(n int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(min(n, maxBucketCount)))
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

// readUser returns every minute stored in a user's bucket, oldest first.
// It rejects anything putMinute would not have written, so damage is
// reported, not half-read.
func readUser(ub *bbolt.Bucket) (*window, error) {
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

// putMinute stores n as user's count for minute, deleting the key when n
// is 0, then deletes up to prunePerWrite of the user's keys at or before
// cutoff, and the user's bucket once it is empty. It puts one key of 8
// bytes with a value of 4, whatever the user's history: the write does
// not grow with it.
func putMinute(b *bbolt.Bucket, user string, minute int64, n int, cutoff int64) error {
	if n == 0 && b.Bucket([]byte(user)) == nil {
		return nil
	}
	ub, err := b.CreateBucketIfNotExists([]byte(user))
	if err != nil {
		return err
	}
	ub.FillPercent = userFill
	if n > 0 {
		err = ub.Put(minuteKey(minute), countValue(n))
	} else {
		err = ub.Delete(minuteKey(minute))
	}
	if err != nil {
		return err
	}
	if err := deleteThrough(ub, cutoff, prunePerWrite); err != nil {
		return err
	}
	if n > 0 {
		return nil // minute is after cutoff, so its key is still there
	}
	return dropIfEmpty(b, user)
}

// deleteThrough deletes the keys of ub at or before cutoff, at most limit
// of them when limit > 0. They are the first keys, as keys sort by minute.
func deleteThrough(ub *bbolt.Bucket, cutoff int64, limit int) error {
	var expired [][]byte
	c := ub.Cursor()
	for k, _ := c.First(); k != nil && (limit <= 0 || len(expired) < limit); k, _ = c.Next() {
		minute, err := keyMinute(k)
		if err != nil {
			return err
		}
		if minute > cutoff {
			break
		}
		// Keys must not be deleted while the cursor walks them.
		expired = append(expired, k)
	}
	for _, k := range expired {
		if err := ub.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// dropIfEmpty deletes user's bucket if it holds no minute: a user with
// nothing left in the day has no bucket.
func dropIfEmpty(b *bbolt.Bucket, user string) error {
	ub := b.Bucket([]byte(user))
	if ub == nil {
		return nil
	}
	if k, _ := ub.Cursor().First(); k != nil {
		return nil
	}
	return b.DeleteBucket([]byte(user))
}

// loadAll reads every user's bucket into s.users, deleting the minutes at
// or before cutoff and the buckets of users left with none. It runs in
// Open, after migrateV1.
func (s *Store) loadAll(b *bbolt.Bucket, cutoff int64) error {
	var users []string
	err := b.ForEach(func(k, v []byte) error {
		if v != nil {
			return fmt.Errorf("quota: unexpected plain key %q after migration", k)
		}
		users = append(users, string(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, user := range users {
		ub := b.Bucket([]byte(user))
		w, err := readUser(ub)
		if err != nil {
			return fmt.Errorf("quota: counts of user %q: %w", user, err)
		}
		if err := deleteThrough(ub, cutoff, 0); err != nil {
			return err
		}
		if err := dropIfEmpty(b, user); err != nil {
			return err
		}
		w.prune(cutoff)
		if !w.empty() {
			s.users[user] = w
		}
	}
	return nil
}
