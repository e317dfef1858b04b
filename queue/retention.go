package queue

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SweepResult says what one retention sweep did.
type SweepResult struct {
	// Redacted counts finished messages whose content was removed.
	Redacted int
	// Deleted counts stubs removed for good.
	Deleted int
	// Wiped says the freed pages of the file were overwritten with zeros;
	// false when a reader was open and the wipe must wait for the next
	// sweep.
	Wiped bool
}

// Sweep applies the retention policy to finished messages: content older
// than contentAfter (counted from when the message finished) is redacted,
// leaving a stub with ids, envelope, timestamps, per-recipient final
// status and upstream reply; stubs older than stubAfter are deleted.
// Sweep is idempotent.
//
// bbolt does not erase a deleted value: the page that held it goes on the
// free list with its old bytes. So after redacting, Sweep also overwrites
// every free page of the file with zeros, and the content is gone from the
// disk, not merely unreachable.
func (q *Queue) Sweep(contentAfter, stubAfter time.Duration) (SweepResult, error) {
	var res SweepResult
	now := q.now()
	err := q.db.Update(func(tx *bolt.Tx) error {
		msgs, bodies := tx.Bucket(messagesBucket), tx.Bucket(bodiesBucket)
		var redact, remove [][]byte
		var redacted [][]byte
		err := msgs.ForEach(func(k, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("message %s: %w", k, err)
			}
			if m.Finished.IsZero() || m.Pending() {
				return nil
			}
			age := now.Sub(m.Finished)
			switch {
			case age >= stubAfter:
				remove = append(remove, append([]byte(nil), k...))
			case age >= contentAfter && m.Redacted.IsZero():
				m.Redacted = now
				meta, err := json.Marshal(&m)
				if err != nil {
					return err
				}
				redact = append(redact, append([]byte(nil), k...))
				redacted = append(redacted, meta)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Modify after iterating: bbolt cursors must not see their bucket change.
		for _, k := range remove {
			if err := bodies.Delete(k); err != nil {
				return err
			}
			if err := msgs.Delete(k); err != nil {
				return err
			}
		}
		for i, k := range redact {
			if err := bodies.Delete(k); err != nil {
				return err
			}
			if err := msgs.Put(k, redacted[i]); err != nil {
				return err
			}
		}
		res.Redacted, res.Deleted = len(redact), len(remove)
		return nil
	})
	if err != nil {
		return res, err
	}
	q.mu.Lock()
	wipe := q.wipePending || res.Redacted+res.Deleted > 0
	q.mu.Unlock()
	if !wipe {
		return res, nil
	}
	res.Wiped, err = q.wipeFreePages()
	q.mu.Lock()
	// A wipe skipped for an open reader is done by the next sweep.
	q.wipePending = !res.Wiped
	q.mu.Unlock()
	return res, err
}

// wipeFreePages overwrites the free pages of the bbolt file with zeros,
// inside a write transaction so that bbolt cannot hand one of them out
// meanwhile. It only does so when no read transaction is open: a reader
// that began before the redaction may still be reading the freed pages,
// while readers that begin later see the new tree, which no longer
// references them.
func (q *Queue) wipeFreePages() (bool, error) {
	wiped := false
	err := q.db.Update(func(tx *bolt.Tx) error {
		if q.db.Stats().OpenTxN > 0 {
			return nil
		}
		f, err := os.OpenFile(q.db.Path(), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		pageSize := q.db.Info().PageSize
		zero := make([]byte, pageSize)
		pages := int(tx.Size()) / pageSize
		for id := 2; id < pages; id++ { // pages 0 and 1 are the meta pages
			info, err := tx.Page(id)
			if err != nil {
				return err
			}
			if info == nil || info.Type != "free" {
				continue
			}
			if _, err := f.WriteAt(zero, int64(id)*int64(pageSize)); err != nil {
				return err
			}
		}
		if err := f.Sync(); err != nil {
			return err
		}
		wiped = true
		return nil
	})
	return wiped, err
}
