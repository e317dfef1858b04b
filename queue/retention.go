package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention is how long finished messages are kept, counted from when they
// finished (Message.Finished).
type Retention struct {
	// Content is how long a finished message keeps its body; then it is
	// redacted to a stub. A copy of another message's content (a DSN, see
	// Message.ContentOf) goes no later than that message's.
	Content time.Duration
	// Stub is how long the stub is kept; then it is deleted.
	Stub time.Duration
}

const (
	// sweepBatch bounds the messages one sweep transaction redacts or
	// deletes. Submissions wait for bbolt's single writer: they wait for
	// one batch at most, never for the whole sweep.
	sweepBatch = 256
	// sweepScan bounds the records one read transaction of the sweep
	// decodes, so that the read is short too (a long read keeps the pages
	// it sees from being wiped, see wipe).
	sweepScan = 1024
	// sweepEvery is how often RunRetention sweeps.
	sweepEvery = time.Hour
	// wipeWait bounds how long one wipe attempt holds the queue's writes
	// while it waits for read transactions older than it to end.
	wipeWait = 500 * time.Millisecond
	// wipeRetry is how soon RunRetention tries an unfinished wipe again.
	wipeRetry = 10 * time.Second
)

// SweepResult says what one retention sweep did.
type SweepResult struct {
	// Redacted counts finished messages whose content was removed.
	Redacted int
	// Deleted counts stubs removed for good.
	Deleted int
	// Wiped says the free pages of the file were overwritten with zeros;
	// false when there was nothing to wipe, or when a read transaction
	// older than the wipe stayed open too long: then the wipe is owed and
	// RunRetention tries it again shortly.
	Wiped bool
}

// RunRetention applies r until done is closed: a sweep at once, then
// every hour, and soon after `queue delete` removed a message (its
// pages are wiped, and notifications quoting it lose their copy). A wipe
// that could not finish is tried again every ten seconds, so content that
// is redacted or deleted is gone from the file within seconds, as long as
// no single read transaction stays open longer than that (every read in
// outbound is one lookup or a listing).
func (q *Queue) RunRetention(done <-chan struct{}, r Retention, log *slog.Logger) {
	hourly := time.NewTicker(sweepEvery)
	defer hourly.Stop()
	// The previous run may have stopped before its last wipe.
	q.contentFreed()
	sweep := true
	for {
		var res SweepResult
		var err error
		if sweep {
			res, err = q.Sweep(r.Content, r.Stub)
		} else {
			res.Wiped, err = q.wipe()
		}
		switch {
		case err != nil:
			log.Error("retention sweep failed", "err", err)
		case res.Redacted+res.Deleted > 0 || res.Wiped:
			log.Info("retention sweep", "redacted", res.Redacted, "deleted", res.Deleted, "free_pages_wiped", res.Wiped)
		}
		var retry <-chan time.Time
		if q.wipeOwed() {
			retry = time.After(wipeRetry)
		}
		select {
		case <-done:
			return
		case <-hourly.C:
			sweep = true
		case <-q.retain:
			sweep = true
		case <-retry:
			sweep = false
		}
	}
}

// Sweep applies the retention policy to finished messages: content older
// than contentAfter (counted from when the message finished) is redacted,
// leaving a stub with ids, envelope, timestamps, per-recipient final
// status and upstream reply; stubs older than stubAfter are deleted.
// Sweep is idempotent.
//
// It reads the records in short read transactions and changes them in
// write transactions of at most sweepBatch messages, so submissions are
// never held up for a whole sweep.
//
// bbolt does not erase a deleted value: the page that held it goes on the
// free list with its old bytes. So after redacting, Sweep also overwrites
// the free pages of the file with zeros (see wipe), and the content is
// gone from the disk, not merely unreachable.
func (q *Queue) Sweep(contentAfter, stubAfter time.Duration) (SweepResult, error) {
	r := Retention{Content: contentAfter, Stub: stubAfter}
	now := q.now()
	var res SweepResult
	var from []byte
	for {
		due, next, err := q.sweepDue(r, now, from)
		if err != nil {
			return res, err
		}
		if len(due) > 0 {
			redacted, deleted, err := q.sweepApply(r, now, due)
			if err != nil {
				return res, err
			}
			res.Redacted += redacted
			res.Deleted += deleted
			if redacted+deleted > 0 {
				q.contentFreed()
			}
		}
		if next == nil {
			break
		}
		from = next
	}
	if !q.wipeOwed() {
		return res, nil
	}
	var err error
	res.Wiped, err = q.wipe()
	return res, err
}

// sweepDue reads, in one read transaction, at most sweepScan records from
// key from on (from the first when nil), and returns the keys of those the
// policy redacts or deletes now, at most sweepBatch, and the key to go on
// from (nil at the end).
func (q *Queue) sweepDue(r Retention, now time.Time, from []byte) (due [][]byte, next []byte, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(messagesBucket).Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for scanned := 0; k != nil; k, v = c.Next() {
			if scanned == sweepScan || len(due) == sweepBatch {
				next = append([]byte(nil), k...)
				return nil
			}
			scanned++
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("message %s: %w", k, err)
			}
			if r.action(tx, &m, now) != keep {
				due = append(due, append([]byte(nil), k...))
			}
		}
		return nil
	})
	return due, next, err
}

// sweepApply redacts or deletes the messages keys names, in one write
// transaction shared with concurrent submissions. Each record is read
// and judged again there: it may have changed since sweepDue read it.
func (q *Queue) sweepApply(r Retention, now time.Time, keys [][]byte) (redacted, deleted int, err error) {
	err = q.commit.Update(func(tx *bolt.Tx) error {
		redacted, deleted = 0, 0 // the function may run more than once
		msgs := tx.Bucket(messagesBucket)
		for _, k := range keys {
			v := msgs.Get(k)
			if v == nil {
				continue
			}
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("message %s: %w", k, err)
			}
			switch r.action(tx, &m, now) {
			case remove:
				if err := deleteBody(tx, k); err != nil {
					return err
				}
				if err := msgs.Delete(k); err != nil {
					return err
				}
				if q.journal != nil {
					// The message's events go with its stub.
					if err := q.journal.Removed(tx, m.ID); err != nil {
						return err
					}
				}
				deleted++
			case redact:
				m.Redacted = now
				meta, err := json.Marshal(&m)
				if err != nil {
					return err
				}
				if err := deleteBody(tx, k); err != nil {
					return err
				}
				if err := msgs.Put(k, meta); err != nil {
					return err
				}
				if q.journal != nil {
					if err := q.journal.Redacted(tx, m.ID, m.User, now); err != nil {
						return err
					}
				}
				redacted++
			}
		}
		return nil
	})
	return redacted, deleted, err
}

type action int

const (
	keep action = iota
	redact
	remove
)

// action is what the policy does now with the stored message m.
func (r Retention) action(tx *bolt.Tx, m *Message, now time.Time) action {
	if m.Finished.IsZero() || m.Pending() {
		return keep
	}
	if now.Sub(m.Finished) >= r.Stub {
		return remove
	}
	if m.Redacted.IsZero() && !now.Before(r.contentDeadline(tx, m)) {
		return redact
	}
	return keep
}

// contentDeadline is when the finished message m must lose its content:
// r.Content after it finished. A copy of another message's content (a DSN
// that returns the original or its headers) keeps that message's clock
// rather than starting its own: it goes no later than the original's
// content, and at once when the original is already redacted or gone.
func (r Retention) contentDeadline(tx *bolt.Tx, m *Message) time.Time {
	deadline := m.Finished.Add(r.Content)
	if m.ContentOf == "" {
		return deadline
	}
	v := tx.Bucket(messagesBucket).Get([]byte(m.ContentOf))
	if v == nil {
		return time.Time{} // deleted: by the operator, or its stub expired
	}
	var orig Message
	if err := json.Unmarshal(v, &orig); err != nil {
		return time.Time{} // unreadable: keep no copy of what it held
	}
	if !orig.Redacted.IsZero() {
		return time.Time{}
	}
	if !orig.Finished.IsZero() {
		if d := orig.Finished.Add(r.Content); d.Before(deadline) {
			deadline = d
		}
	}
	return deadline
}

// contentFreed records that a committed transaction removed content, so
// that the free pages are owed a wipe.
func (q *Queue) contentFreed() {
	q.mu.Lock()
	q.freedGen++
	q.mu.Unlock()
}

func (q *Queue) wipeOwed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.wipedGen != q.freedGen
}

// wakeRetention makes RunRetention sweep soon.
func (q *Queue) wakeRetention() {
	select {
	case q.retain <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// wipe overwrites the free pages of the bbolt file with zeros, and reports
// whether it could. bbolt keeps a page that a transaction freed "pending"
// while a read transaction that may still read it is open, and only then
// releases it for reuse; zeroing a pending page would pull the ground from
// under that reader. So wipe first commits a transaction of its own, E,
// which frees nothing but the free list it replaces: readers that begin
// after it see E's tree, which references no free page. It then waits
// (at most wipeWait, with the queue's writes held so that E stays the
// latest commit) until bbolt has released every pending page but E's:
// then no reader can see any free page, and it zeroes them all. Readers
// that begin meanwhile do not delay it, so a steady stream of short reads
// cannot postpone it; only a read transaction that began before E and
// stays open longer than wipeWait can, and the wipe is then owed and tried
// again. Another package's write between E and the zeroing makes it start
// over, a few times at most.
func (q *Queue) wipe() (wiped bool, err error) {
	q.commit.Pause(func() {
		q.mu.Lock()
		gen := q.freedGen
		q.mu.Unlock()
		for try := 0; try < 3 && !wiped && err == nil; try++ {
			var again bool
			wiped, again, err = q.wipeAttempt()
			if !again {
				break
			}
		}
		if wiped {
			q.mu.Lock()
			q.wipedGen = gen
			q.mu.Unlock()
		}
	})
	return wiped, err
}

// wipeAttempt is one try of wipe. When it could not wipe, again says
// whether that was for another package's write in between (rather than
// for a reader that stayed open for wipeWait).
func (q *Queue) wipeAttempt() (wiped, again bool, err error) {
	// E: from its commit on, new readers see a tree without free pages.
	// It frees only the pages of the free list it replaces, which the
	// older meta page still names: those are left as they are.
	e, replaced := 0, map[int]bool{}
	err = q.db.Update(func(tx *bolt.Tx) error {
		e = tx.ID()
		return freeListPages(tx, replaced)
	})
	if err != nil {
		return false, false, err
	}
	// A reader of E keeps E's own freed pages pending (bbolt releases a
	// transaction's pages only once no reader of it or an older tree is
	// open), so that bbolt's count of pending pages equals len(replaced)
	// exactly when every other pending page has been released.
	deadline := time.Now().Add(wipeWait)
	pin, err := q.pinRead(deadline)
	if err != nil {
		return false, false, err
	}
	defer pin.release()
	if pin.txid != e {
		return false, true, nil // another write came in between
	}
	if q.db.Stats().TxN == 0 {
		return false, false, errors.New("queue: bbolt statistics are off (Options.NoStatistics), so the wipe cannot tell which free pages a reader may still see")
	}
	for probes, pause := 0, time.Millisecond; ; probes, pause = probes+1, min(2*pause, 20*time.Millisecond) {
		tx, err := q.db.Begin(true)
		if err != nil {
			return false, false, err
		}
		if tx.ID() != e+1 {
			tx.Rollback()
			return false, true, nil // another write came in between
		}
		// The counts as the previous write transaction left them. They
		// are trusted only once a write began while the pin was open
		// (every write since our first probe did) and the pin is still
		// open.
		released := probes > 0 && pin.open.Load() && q.db.Stats().PendingPageN == len(replaced)
		if released {
			err = zeroFreePages(tx, q.db.Path(), q.db.Info().PageSize, replaced)
		}
		// Rolled back: the writer lock was all it needed. The rollback
		// records, for the next probe, what bbolt released when it began.
		tx.Rollback()
		if released || err != nil {
			return err == nil, false, err
		}
		if time.Now().Add(pause).After(deadline) {
			return false, false, nil
		}
		time.Sleep(pause)
	}
}

// freeListPages adds to pages the pages that hold the database's current
// free list.
func freeListPages(tx *bolt.Tx, pages map[int]bool) error {
	return walkPages(tx, func(id int, typ string, overflow int) error {
		if typ == "freelist" {
			for i := 0; i <= overflow; i++ {
				pages[id+i] = true
			}
		}
		return nil
	})
}

// zeroFreePages overwrites with zeros every free page of the file but
// those in skip. tx is a write transaction, so that bbolt cannot hand one
// of them out meanwhile.
func zeroFreePages(tx *bolt.Tx, path string, pageSize int, skip map[int]bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	page := make([]byte, pageSize)
	wrote := false
	err = walkPages(tx, func(id int, typ string, _ int) error {
		if typ != "free" || skip[id] {
			return nil
		}
		at := int64(id) * int64(pageSize)
		// A page wiped before and not reused since needs no write.
		if _, err := f.ReadAt(page, at); err != nil {
			return err
		}
		if allZero(page) {
			return nil
		}
		clear(page)
		wrote = true
		_, err := f.WriteAt(page, at)
		return err
	})
	if err != nil || !wrote {
		return err
	}
	return f.Sync()
}

// walkPages calls fn for every page of the file below the high-water mark
// but the two meta pages: each free page (whose bytes are whatever they
// were), and the first page of each page in use, stepping over the
// overflow pages that continue it (whose bytes are data, not a header).
func walkPages(tx *bolt.Tx, fn func(id int, typ string, overflow int) error) error {
	pages := int(tx.Size()) / tx.DB().Info().PageSize
	for id := 2; id < pages; {
		info, err := tx.Page(id)
		if err != nil {
			return err
		}
		if info == nil {
			return nil
		}
		if err := fn(id, info.Type, info.OverflowCount); err != nil {
			return err
		}
		if info.Type == "free" {
			id++ // bbolt frees a page and its overflow one id at a time
		} else {
			id += 1 + info.OverflowCount
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readPin is a read transaction held open by its own goroutine.
type readPin struct {
	txid int
	open atomic.Bool
	stop chan struct{}
	done chan struct{}
}

// pinRead opens a read transaction and keeps it open until release, or
// until deadline. It lives in a goroutine of its own, with a deadline,
// because a goroutine that holds a reader while it waits for bbolt's
// writer lock can deadlock: a writer that must grow the file's mapping
// waits for every reader to end.
func (q *Queue) pinRead(deadline time.Time) (*readPin, error) {
	p := &readPin{stop: make(chan struct{}), done: make(chan struct{})}
	opened := make(chan error, 1)
	go func() {
		defer close(p.done)
		tx, err := q.db.Begin(false)
		if err != nil {
			opened <- err
			return
		}
		p.txid = tx.ID()
		p.open.Store(true)
		opened <- nil
		expire := time.NewTimer(time.Until(deadline))
		defer expire.Stop()
		select {
		case <-p.stop:
		case <-expire.C:
		}
		p.open.Store(false)
		tx.Rollback()
	}()
	if err := <-opened; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *readPin) release() {
	close(p.stop)
	<-p.done
}
