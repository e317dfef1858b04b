package main

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/queue"
)

// journals tells every storage owner that keeps records about messages
// (queue.Journal) of a redaction or deletion, in its transaction.
type journals []queue.Journal

func (js journals) Redacted(tx *bolt.Tx, id, user string, at time.Time) error {
	for _, j := range js {
		if err := j.Redacted(tx, id, user, at); err != nil {
			return err
		}
	}
	return nil
}

func (js journals) Removed(tx *bolt.Tx, id string) error {
	for _, j := range js {
		if err := j.Removed(tx, id); err != nil {
			return err
		}
	}
	return nil
}
