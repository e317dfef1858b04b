package quota

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.etcd.io/bbolt"
)

// The on-disk layout (see the package doc): in the "quota" bucket, one key
// per user and hour with sends, the hour first so that keys sort by time,
// its value the 60 minute counts of that hour.

const (
	// hourFormat is the first byte of every hour value. Version 1 was the
	// whole-day record (v1.go), version 2 the per-minute buckets
	// (minutes.go), which had no version byte of their own.
	hourFormat = 3

	// hourKeyLen is the length of a key's hour; the login follows it.
	hourKeyLen = 8

	// hourValueLen is the length of every hour value: the format byte,
	// then 60 counts of 4 bytes.
	hourValueLen = 1 + hourMinutes*4

	// maxUserLen is the longest login a key has room for.
	maxUserLen = bbolt.MaxKeySize - hourKeyLen
)

// maxBucketCount bounds a stored count so that sums over a day cannot
// overflow, whatever the disk says. Counts above it (only possible with
// limits far above the operator ceiling) are stored as maxBucketCount,
// which still refuses any sane limit.
const maxBucketCount = math.MaxInt32

// prunePerWrite bounds how many expired hour keys one write deletes. A
// user's writes add at most one key per hour and there is at least one
// write per key, so deleting up to two per write keeps the bucket near a
// day's worth of keys, while the write stays small.
const prunePerWrite = 2

// quotaFill is the FillPercent of the "quota" bucket. New keys land at its
// end, in the current hour, and old ones leave from its front, so pages
// can be split full rather than half full (bbolt's default, made for
// random inserts). It is not stored: every transaction that writes the
// bucket sets it.
const quotaFill = 1.0

var errStored = errors.New("malformed count")

// hourOf is the hour minute falls in, in unix hours: floored, so that even
// minutes before 1970 (a broken clock) keep 60 to an hour.
func hourOf(minute int64) int64 {
	if minute < 0 {
		return (minute - hourMinutes + 1) / hourMinutes
	}
	return minute / hourMinutes
}

// hourExpired reports whether every minute of hour is at or before cutoff,
// so that no window reaches any of them.
func hourExpired(hour, cutoff int64) bool {
	return hour*hourMinutes+hourMinutes-1 <= cutoff
}

// hourKey is the key of user's counts of hour: the hour big-endian with
// the sign bit flipped, so that keys sort by time even before 1970, then
// the login byte for byte.
func hourKey(hour int64, user string) []byte {
	k := make([]byte, 0, hourKeyLen+len(user))
	k = binary.BigEndian.AppendUint64(k, uint64(hour)^(1<<63))
	return append(k, user...)
}

func keyHour(k []byte) (hour int64, user string, err error) {
	if len(k) <= hourKeyLen {
		return 0, "", fmt.Errorf("quota: key %x is no hour key", k)
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), string(k[hourKeyLen:]), nil
}

// hourValue is the stored form of the counts of one hour, its first minute
// first: the format byte and 60 counts of 4 bytes big-endian, so every
// write puts the same number of bytes. It is nil when all are 0: an hour
// without sends has no key.
func hourValue(counts *[hourMinutes]uint32) []byte {
	if *counts == ([hourMinutes]uint32{}) {
		return nil
	}
	v := make([]byte, 1, hourValueLen)
	v[0] = hourFormat
	for _, n := range counts {
		v = binary.BigEndian.AppendUint32(v, n)
	}
	return v
}

// readHour appends the minutes with sends of hour's value v to w. It
// rejects anything hourValue would not have written, so damage is
// reported, not half-read.
func readHour(w *window, hour int64, v []byte) error {
	if len(v) != hourValueLen || v[0] != hourFormat {
		return fmt.Errorf("%w: value of %d bytes, format %d", errStored, len(v), firstByte(v))
	}
	first := hour * hourMinutes
	if last := len(w.b) - 1; last >= 0 && w.b[last].minute >= first {
		return fmt.Errorf("%w: hour %d read out of order", errStored, hour)
	}
	added := 0
	for i := range hourMinutes {
		n := binary.BigEndian.Uint32(v[1+4*i:])
		if n > maxBucketCount {
			return fmt.Errorf("%w: count %d out of range", errStored, n)
		}
		if n > 0 {
			w.b = append(w.b, bucket{minute: first + int64(i), n: int(n)})
			added++
		}
	}
	if added == 0 {
		return fmt.Errorf("%w: hour without sends", errStored)
	}
	return nil
}

func firstByte(v []byte) int {
	if len(v) == 0 {
		return -1
	}
	return int(v[0])
}

// putHour stores counts as user's counts of hour, deleting the key when
// all are 0, then deletes up to prunePerWrite expired hour keys, whoever's
// they are. It puts one key of the same size whatever the user's history:
// the write does not grow with it.
func putHour(b *bbolt.Bucket, user string, hour int64, counts *[hourMinutes]uint32, cutoff int64) error {
	b.FillPercent = quotaFill
	var err error
	if v := hourValue(counts); v != nil {
		err = b.Put(hourKey(hour, user), v)
	} else {
		err = b.Delete(hourKey(hour, user))
	}
	if err != nil {
		return err
	}
	return deleteExpired(b, cutoff, prunePerWrite)
}

// deleteExpired deletes the hour keys of b whose minutes are all at or
// before cutoff, at most limit of them when limit > 0. They are the first
// keys, as keys sort by hour.
func deleteExpired(b *bbolt.Bucket, cutoff int64, limit int) error {
	var expired [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && (limit <= 0 || len(expired) < limit); k, _ = c.Next() {
		hour, _, err := keyHour(k)
		if err != nil {
			return err
		}
		if !hourExpired(hour, cutoff) {
			break
		}
		// Keys must not be deleted while the cursor walks them.
		expired = append(expired, k)
	}
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// hourEntry is one hour key and its value.
type hourEntry struct{ key, value []byte }

// appendHours appends w's hour keys for user to entries, in Open's
// conversion of older layouts. w must hold nothing at or before cutoff.
func appendHours(entries []hourEntry, user string, w *window, cutoff int64) []hourEntry {
	for i := 0; i < len(w.b); {
		hour := hourOf(w.b[i].minute)
		counts := w.hourCounts(hour, cutoff)
		if v := hourValue(&counts); v != nil {
			entries = append(entries, hourEntry{hourKey(hour, user), v})
		}
		for i < len(w.b) && hourOf(w.b[i].minute) == hour {
			i++
		}
	}
	return entries
}

// loadAll deletes the hour keys of b with nothing left in the day and
// reads the others into s.users. It runs in Open, after migrate, so every
// key is an hour key. Keys come in hour order, so each user's minutes are
// appended in order.
func (s *Store) loadAll(b *bbolt.Bucket, cutoff int64) error {
	b.FillPercent = quotaFill
	if err := deleteExpired(b, cutoff, 0); err != nil {
		return err
	}
	sizes, err := minutesPerUser(b)
	if err != nil {
		return err
	}
	// Keys of the hour cutoff falls in may hold expired minutes only.
	var stale [][]byte
	err = b.ForEach(func(k, v []byte) error {
		hour, user, err := keyHour(k)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("quota: unexpected bucket %q after migration", k)
		}
		w := s.users[user]
		if w == nil {
			w = &window{b: make([]bucket, 0, sizes[user])}
			s.users[user] = w
		}
		if err := readHour(w, hour, v); err != nil {
			return fmt.Errorf("quota: counts of user %q, hour %d: %w", user, hour, err)
		}
		if w.b[len(w.b)-1].minute <= cutoff {
			stale = append(stale, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for user, w := range s.users {
		w.prune(cutoff) // the expired minutes of the oldest hour
		if w.empty() {
			delete(s.users, user)
		}
	}
	return nil
}

// minutesPerUser counts the minutes with sends of each user in b, so that
// loadAll allocates each window once: growing a thousand windows of a full
// day by appending took most of Open's time. It counts what it can; what
// it cannot, loadAll reports.
func minutesPerUser(b *bbolt.Bucket) (map[string]int, error) {
	sizes := map[string]int{}
	err := b.ForEach(func(k, v []byte) error {
		_, user, err := keyHour(k)
		if err != nil || len(v) != hourValueLen {
			return err
		}
		n := 0
		for i := 1; i < len(v); i += 4 {
			if binary.BigEndian.Uint32(v[i:]) != 0 {
				n++
			}
		}
		sizes[user] += n
		return nil
	})
	return sizes, err
}
