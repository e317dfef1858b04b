package events

import (
	"encoding/json"
	"strings"

	"outbound/store"
)

// refsBucket finds a message by what providers call it:
//
//	events-by-ref: "m" + NUL + Message-ID (no brackets) → queue ID + NUL + user
//	               "p" + NUL + provider id             → queue ID + NUL + user
//
// written with the events that carry them (relayed), deleted with the
// message's events. A Message-ID used by two messages (a client may set
// its own) finds the later one.
var refsBucket = []byte("events-by-ref")

// NormalizeMessageID is a Message-ID as the index keeps it: without its
// angle brackets and surrounding space.
func NormalizeMessageID(id string) string {
	return strings.Trim(strings.TrimSpace(id), "<>")
}

func refKeys(e Event) [][]byte {
	var out [][]byte
	if id := NormalizeMessageID(e.MessageID); id != "" {
		out = append(out, []byte("m\x00"+id))
	}
	if e.ProviderID != "" {
		out = append(out, []byte("p\x00"+e.ProviderID))
	}
	return out
}

// putRefs indexes e by its Message-ID and provider id, if it has them.
func putRefs(tx store.Tx, e Event) error {
	b := tx.Bucket(refsBucket)
	if b == nil {
		return nil
	}
	for _, k := range refKeys(e) {
		if err := b.Put(k, []byte(e.Message+"\x00"+e.User)); err != nil {
			return err
		}
	}
	return nil
}

// deleteRefs removes the index entries of the stored event v of message
// id, unless they point at another message by now.
func deleteRefs(tx store.Tx, id string, v []byte) error {
	b := tx.Bucket(refsBucket)
	if b == nil || v == nil {
		return nil
	}
	var e Event
	if json.Unmarshal(v, &e) != nil {
		return nil
	}
	for _, k := range refKeys(e) {
		if cur := b.Get(k); cur != nil && strings.HasPrefix(string(cur), id+"\x00") {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Match returns the queue ID and user of the message relayed with this
// Message-ID (brackets or not) and, failing that, with this provider id;
// ok is false when neither is known (or both are empty).
func (b *Bolt) Match(messageID, providerID string) (message, user string, ok bool, err error) {
	err = b.db.View(func(tx store.Tx) error {
		bk := tx.Bucket(refsBucket)
		for _, e := range []Event{{MessageID: messageID}, {ProviderID: providerID}} {
			for _, k := range refKeys(e) {
				if v := bk.Get(k); v != nil {
					message, user, _ = strings.Cut(string(v), "\x00")
					ok = true
					return nil
				}
			}
		}
		return nil
	})
	return message, user, ok, err
}
