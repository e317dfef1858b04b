package events

import (
	"bytes"
	"encoding/json"
	"fmt"

	"outbound/store"
)

// A message's tags and metadata (queue.Message) are copied into every one
// of its events. The events made from the queue's record of the message
// (submission, delivery attempts, notifications: fromMessage) get them from
// their writers, who have the record at hand. The others (a provider's
// report, the retention sweep's redacted event) are written by callers that
// know the message by its ID only, so Put takes the labels from the
// message's own earlier events in the same transaction: no read of the
// queue, and no read at all on the submission and delivery path.

// fromMessage reports whether events of kind k are made from the queue's
// record of their message, so their writers copy its labels themselves.
func fromMessage(k Kind) bool {
	switch k {
	case Received, Deferred, Relayed, Failed, DSNQueued:
		return true
	}
	return false
}

// inherit gives e the labels of its message, read in tx, when e is of a
// kind written without them (not fromMessage) and carries none of its own.
// A message whose events are gone (its stub deleted) has none to give: e
// is then stored without labels.
func inherit(tx store.Tx, e *Event) error {
	if e.Message == "" || fromMessage(e.Kind) || len(e.Tags) > 0 || len(e.Metadata) > 0 {
		return nil
	}
	tags, meta, err := labelsTx(tx, e.Message)
	if err != nil {
		return err
	}
	e.Tags, e.Metadata = tags, meta
	return nil
}

// labelsTx returns message id's tags and metadata as its oldest event made
// from the message has them (nil when it has none, or no such event is
// left). That event is nearly always the first one (received), so this is
// one seek and one decode.
func labelsTx(tx store.Tx, id string) ([]string, map[string]string, error) {
	all, idx := tx.Bucket(eventsBucket), tx.Bucket(byMessageBucket)
	prefix := []byte(id + "/")
	c := idx.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		v := all.Get(k[len(prefix):])
		if v == nil {
			continue
		}
		var e struct {
			Kind     Kind              `json:"kind"`
			Tags     []string          `json:"tags"`
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, nil, fmt.Errorf("event %x: %w", k[len(prefix):], err)
		}
		if fromMessage(e.Kind) {
			return e.Tags, e.Metadata, nil
		}
	}
	return nil, nil, nil
}
