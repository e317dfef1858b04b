package quota

import (
	"bytes"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"
)

// oldEntry is one user's counts in a layout older than the hour keys.
type oldEntry struct {
	name   []byte // its key or nested bucket in the "quota" bucket
	bucket bool   // a nested bucket of the per-minute layout, else a version 1 record
	w      *window
}

// migrate replaces every version 1 record and every per-minute bucket in b
// by the user's hour keys, leaving out what is at or before cutoff. It runs
// in Open's transaction, so a data directory is converted whole or not at
// all; an entry that cannot be decoded fails Open, as counts that silently
// vanished would let users oversend. Hour keys already there are left to
// loadAll.
func migrate(b *bbolt.Bucket, cutoff int64) error {
	old, err := readOld(b)
	if err != nil {
		return err
	}
	// Delete every old entry before writing any hour key, so that no new
	// key can meet an old one of the same name.
	for _, e := range old {
		if e.bucket {
			err = b.DeleteBucket(e.name)
		} else {
			err = b.Delete(e.name)
		}
		if err != nil {
			return err
		}
	}
	var entries []hourEntry
	for _, e := range old {
		e.w.prune(cutoff)
		entries = appendHours(entries, string(e.name), e.w, cutoff)
	}
	// Put in key order: bbolt inserts into a sorted slice per page, and
	// a thousand busy users' keys put user by user spent seconds moving
	// it; in order, each put appends.
	slices.SortFunc(entries, func(a, b hourEntry) int { return bytes.Compare(a.key, b.key) })
	b.FillPercent = quotaFill
	for _, e := range entries {
		if err := b.Put(e.key, e.value); err != nil {
			return err
		}
	}
	return nil
}

// readOld decodes the entries of b in an older layout: nested buckets
// (per-minute) and plain keys whose value starts with formatVersion.
func readOld(b *bbolt.Bucket) ([]oldEntry, error) {
	var old []oldEntry
	err := b.ForEach(func(k, v []byte) error {
		e := oldEntry{name: bytes.Clone(k), bucket: v == nil}
		var err error
		switch {
		case e.bucket:
			e.w, err = readMinutes(b.Bucket(k))
		case len(v) > 0 && v[0] == formatVersion:
			e.w, err = decode(v)
		default:
			return nil // an hour key
		}
		if err != nil {
			return fmt.Errorf("quota: record of user %q: %w", k, err)
		}
		old = append(old, e)
		return nil
	})
	return old, err
}
