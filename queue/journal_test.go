package queue

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketJournal is a Journal that keeps its records in a bucket of the
// same file, as the event log does: id → "redacted", deleted on Removed.
type bucketJournal struct{ fail bool }

var journalBucket = []byte("journal")

func (j *bucketJournal) Redacted(tx *bolt.Tx, id, user string, at time.Time) error {
	if j.fail {
		return errors.New("journal refuses")
	}
	b, err := tx.CreateBucketIfNotExists(journalBucket)
	if err != nil {
		return err
	}
	return b.Put([]byte(id), []byte("redacted"))
}

func (j *bucketJournal) Removed(tx *bolt.Tx, id string) error {
	if j.fail {
		return errors.New("journal refuses")
	}
	b, err := tx.CreateBucketIfNotExists(journalBucket)
	if err != nil {
		return err
	}
	return b.Delete([]byte(id))
}

func journalHas(t *testing.T, db *bolt.DB, id string) bool {
	t.Helper()
	has := false
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(journalBucket); b != nil {
			has = b.Get([]byte(id)) != nil
		}
		return nil
	})
	return has
}

// The retention sweep tells the journal of a redaction and of a stub's
// deletion in the transaction that makes it: when the journal's write
// fails, the sweep changes nothing.
func TestSweepTellsTheJournalInItsTransaction(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), clock.Now)
	j := &bucketJournal{fail: true}
	q.SetJournal(j)
	m := finishedMessage(t, q, []byte("Subject: x\r\n\r\nhello\r\n"))

	clock.Advance(31 * day)
	if _, err := q.Sweep(30*day, 90*day); err == nil {
		t.Fatal("a sweep whose journal write failed reported no error")
	}
	if got, _ := q.Get(m.ID); !got.Redacted.IsZero() {
		t.Fatal("the message was redacted though its journal write failed")
	}
	j.fail = false
	if res, err := q.Sweep(30*day, 90*day); err != nil || res.Redacted != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	if !journalHas(t, db, m.ID) {
		t.Fatal("the journal was not told of the redaction")
	}
	clock.Advance(60 * day)
	if res, err := q.Sweep(30*day, 90*day); err != nil || res.Deleted != 1 {
		t.Fatalf("sweep = %+v, %v", res, err)
	}
	if journalHas(t, db, m.ID) {
		t.Error("the journal's record outlived the stub")
	}
}

func TestDeleteTellsTheJournal(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	q.SetJournal(&bucketJournal{})
	m := finishedMessage(t, q, []byte("x"))
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists(journalBucket)
		return b.Put([]byte(m.ID), []byte("received"))
	})
	if err := q.Delete(m.ID); err != nil {
		t.Fatal(err)
	}
	if journalHas(t, db, m.ID) {
		t.Error("the journal's record outlived the deleted message")
	}
}

// UpdateAlso's writes are durable exactly when the outcome is: a failing
// one stores nothing, and the message stays leased to its caller.
func TestUpdateAlsoWritesInTheSameTransaction(t *testing.T) {
	q, db := openAt(t, filepath.Join(t.TempDir(), "q.db"), nil)
	m := newMessage("bob@example.net")
	if err := q.Add(m, []byte("x")); err != nil {
		t.Fatal(err)
	}
	m.Recipients[0].Status = Delivered
	refuse := func(tx *bolt.Tx) error { return errors.New("refused") }
	if err := q.UpdateAlso(m, []TxHook{refuse}); err == nil {
		t.Fatal("UpdateAlso with a failing write reported no error")
	}
	if got, _ := q.Get(m.ID); got.Recipients[0].Status != Queued {
		t.Fatal("the outcome was stored without its other write")
	}
	note := func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(journalBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(m.ID), []byte("relayed"))
	}
	if err := q.UpdateAlso(m, []TxHook{note}); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(m.ID); got.Recipients[0].Status != Delivered || !journalHas(t, db, m.ID) {
		t.Error("the outcome and its other write were not both stored")
	}
}
