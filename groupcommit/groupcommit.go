// Package groupcommit commits concurrent writes to a bbolt database in
// shared transactions, so that many submissions pay for one fsync.
//
// bbolt's own DB.Batch does the same but waits for a timer (MaxBatchDelay)
// before every commit: with one client that wait is the whole latency, and
// with a short timer the batches stay small under load. Here nothing waits
// on a clock: whoever arrives while no commit is running commits at once,
// and whatever arrives during that commit is gathered into the next one,
// which starts the moment the previous one ends. A lone writer pays one
// fsync; a hundred concurrent writers share a few.
//
// There is no background goroutine. The caller that finds the committer
// idle becomes its leader and commits; when its commit is done and more
// calls are waiting, it hands the leadership to the oldest of them and
// returns to its own client.
package groupcommit

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxCalls bounds one transaction, so that a burst of large messages does
// not build a transaction of unbounded size; the rest go in the next one.
const maxCalls = 256

// Committer groups the Update calls made on one database. Create one per
// database and share it: two committers on one file serialise on bbolt's
// writer lock and share nothing.
type Committer struct {
	db *bolt.DB

	mu      sync.Mutex
	busy    bool    // a leader is committing
	pending []*call // waiting for the next commit, oldest first
}

type call struct {
	fn    func(*bolt.Tx) error
	pause func() // set instead of fn by Pause: run alone, with no commit
	err   error
	lead  bool          // set instead of err: the caller is to commit next
	wake  chan struct{} // signalled once, when err or lead is set
}

// New returns a Committer for db.
func New(db *bolt.DB) *Committer { return &Committer{db: db} }

// DB is the database the committer writes to.
func (c *Committer) DB() *bolt.DB { return c.db }

// Update runs fn in a read-write transaction shared with other concurrent
// calls and returns once that transaction is durably committed, or with
// the error that prevented it.
//
// As with bolt.DB.Batch, fn may run more than once: when another call in
// the same transaction fails, the transaction is rolled back and run again
// without it. fn must therefore only depend on what it reads in tx, and
// must not have effects outside the transaction. If fn itself returns an
// error (or panics), only its own caller gets that error.
func (c *Committer) Update(fn func(*bolt.Tx) error) error {
	me := &call{fn: fn, wake: make(chan struct{}, 1)}
	c.run(me)
	return me.err
}

// Pause runs fn once the commit in progress, if any, is done, and commits
// nothing until fn returns: calls arriving meanwhile wait, and are
// committed together afterwards. The queue's wipe of free pages needs a
// moment in which the database's latest transaction stays its own. fn must
// not call Update on the same committer, which would wait for fn.
func (c *Committer) Pause(fn func()) {
	c.run(&call{pause: fn, wake: make(chan struct{}, 1)})
}

// run queues me and, once it leads, commits its batch or runs its pause;
// then it hands the lead to the oldest waiting call. A call that does not
// lead returns when a leader has finished it.
func (c *Committer) run(me *call) {
	c.mu.Lock()
	c.pending = append(c.pending, me)
	if c.busy {
		c.mu.Unlock()
		<-me.wake
		if !me.lead {
			return
		}
		c.mu.Lock()
	}
	// The leader is the oldest pending call: the list was empty when it
	// found the committer idle, and a hand-over goes to pending[0].
	c.busy = true
	n := 1
	if me.pause == nil {
		// The batch stops at a pause, which leads next.
		for n < min(len(c.pending), maxCalls) && c.pending[n].pause == nil {
			n++
		}
	}
	batch := c.pending[:n:n]
	c.pending = c.pending[n:]
	c.mu.Unlock()
	defer c.handOver()

	if me.pause != nil {
		me.pause()
		return
	}
	commit(c.db, batch)
}

// handOver makes the oldest waiting call the next leader, or leaves the
// committer idle.
func (c *Committer) handOver() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) > 0 {
		next := c.pending[0]
		next.lead = true
		next.wake <- struct{}{}
		return
	}
	c.busy = false
	c.pending = nil
}

// commit runs every call of batch in one transaction. A call whose
// function fails is taken out and given its error, and the rest are run
// again in a new transaction; an error of the commit itself (a full disk,
// an I/O error) goes to every call in the transaction.
//
// A panic raised in bbolt's Update outside the calls' functions (while
// committing, or in a commit handler a function registered) fails every
// call still in the transaction. Were it to escape, the leader would leave
// the committer busy, and every later Update would wait for ever. Whether
// that transaction reached the disk is unknown (a commit handler runs after
// the commit), so its callers get an error that says so: they may retry,
// at worst storing twice, never acknowledging what was lost.
func commit(db *bolt.DB, batch []*call) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("groupcommit: panic in bbolt's Update, the transaction may or may not be committed: %v", p)
			for _, c := range batch {
				c.finish(err)
			}
		}
	}()
	for len(batch) > 0 {
		failed := -1
		err := db.Update(func(tx *bolt.Tx) error {
			for i, c := range batch {
				if err := c.run(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range batch {
				c.finish(err)
			}
			return
		}
		batch[failed].finish(err)
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

// run calls the function, turning a panic into its error: a leader that
// panicked would leave the committer busy for ever, and every later
// Update waiting.
func (c *call) run(tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("groupcommit: panic in a transaction function: %v", p)
		}
	}()
	return c.fn(tx)
}

func (c *call) finish(err error) {
	c.err = err
	c.wake <- struct{}{}
}
