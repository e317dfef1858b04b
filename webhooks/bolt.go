package webhooks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"outbound/events"
	"outbound/store"
)

var (
	endpointsBucket = []byte("webhook-endpoints")
	outboxBucket    = []byte("webhook-outbox")
)

// stored is an endpoint as kept on disk: with its signing secret sealed,
// which only the Worker opens, to sign (sealed.go).
type stored struct {
	Endpoint
	// SealedSecret is the signing secret (whsec_...) sealed by the Sealer
	// with secretAD(User, ID) as associated data. Bolt.openSecret opens
	// it for the Worker; nothing lists it.
	SealedSecret []byte `json:"sealed_secret,omitempty"`
	// ClearSecret is the signing secret as data directories from before
	// sealing kept it, in clear; OpenBolt seals it and empties it, so it
	// is never written again.
	ClearSecret string `json:"secret,omitempty"`
}

// delivery is one event waiting for one endpoint.
type delivery struct {
	// ID is the webhook-id header: the same on every retry, so that the
	// endpoint can tell a retry from a new event.
	ID string `json:"id"`
	// Body is the JSON POSTed, fixed when the event was queued.
	Body json.RawMessage `json:"body"`
	// Attempts is how many times it was tried.
	Attempts int `json:"attempts,omitempty"`
	// First is when it was first tried (zero: not yet); three days after,
	// a failure disables the endpoint.
	First time.Time `json:"first,omitzero"`
	// Next is when it is due again (zero: now).
	Next time.Time `json:"next,omitzero"`
	// LastError is the last failure, for the disabling event.
	LastError string `json:"last_error,omitempty"`
}

// Payload is the JSON body of a delivery.
type Payload struct {
	// Type is "message." and the event's kind ("message.relayed").
	Type string `json:"type"`
	// Timestamp is when the event happened.
	Timestamp time.Time `json:"timestamp"`
	// Data is the event as GET /api/events lists it.
	Data events.Event `json:"data"`
}

// Bolt is the Store in the shared store (package store), and the
// events.Outbox that queues deliveries.
type Bolt struct {
	db     store.DB
	policy Policy
	sealer Sealer
	// wake is signalled when deliveries were queued or an endpoint
	// enabled, so that the Worker looks at once.
	wake chan struct{}
}

var (
	_ Store         = (*Bolt)(nil)
	_ events.Outbox = (*Bolt)(nil)
)

// OpenBolt creates the buckets if needed and seals the secrets an older
// data directory kept in clear. policy checks the URLs registered; sealer
// seals the signing secrets (smarthost.Store: register Bolt.Reseal with
// its AlsoReseal so that a key rotation re-seals them).
func OpenBolt(db store.DB, policy Policy, sealer Sealer) (*Bolt, error) {
	err := db.Update(func(tx store.Tx) error {
		for _, b := range [][]byte{endpointsBucket, outboxBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("creating webhook buckets: %w", err)
	}
	b := &Bolt{db: db, policy: policy, sealer: sealer, wake: make(chan struct{}, 1)}
	if err := b.sealClearSecrets(); err != nil {
		return nil, err
	}
	return b, nil
}

// Register implements Store.
func (b *Bolt) Register(ctx context.Context, user, rawURL string, kinds []events.Kind) (Endpoint, string, error) {
	if err := b.policy.CheckURL(ctx, rawURL); err != nil {
		return Endpoint{}, "", &InputError{err}
	}
	known := map[events.Kind]bool{}
	for _, k := range events.Kinds() {
		known[k] = true
	}
	for _, k := range kinds {
		if !known[k] {
			return Endpoint{}, "", &InputError{fmt.Errorf("unknown event kind %q; the kinds are %v", k, events.Kinds())}
		}
	}
	id := make([]byte, 8)
	rand.Read(id)
	secret := NewSecret()
	s := stored{Endpoint: Endpoint{ID: "ep_" + hex.EncodeToString(id), User: user, URL: rawURL, Kinds: kinds,
		SecretHint: secret[:len(secretPrefix)+4] + "…", Created: time.Now().UTC()}}
	if err := b.storeNew(s, secret); err != nil {
		return Endpoint{}, "", fmt.Errorf("storing webhook endpoint: %w", err)
	}
	return s.Endpoint, secret, nil
}

// InputError is a registration refused for what was asked (a URL or kind),
// not for the server's fault; its text says what to change.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// List implements Store.
func (b *Bolt) List(user string) ([]Endpoint, error) {
	var out []Endpoint
	err := b.db.View(func(tx store.Tx) error {
		return tx.Bucket(endpointsBucket).ForEach(func(k, v []byte) error {
			var s stored
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("webhook endpoint %s: %w", k, err)
			}
			if user != "" && s.User != user {
				return nil
			}
			c := tx.Bucket(outboxBucket).Cursor()
			for k, _ := c.Seek(outboxPrefix(s.ID)); k != nil && bytes.HasPrefix(k, outboxPrefix(s.ID)); k, _ = c.Next() {
				s.Pending++
			}
			out = append(out, s.Endpoint)
			return nil
		})
	})
	sortByCreated(out)
	return out, err
}

func sortByCreated(eps []Endpoint) {
	for i := 1; i < len(eps); i++ {
		for j := i; j > 0 && eps[j].Created.Before(eps[j-1].Created); j-- {
			eps[j], eps[j-1] = eps[j-1], eps[j]
		}
	}
}

// Get implements Store.
func (b *Bolt) Get(id string) (Endpoint, error) {
	s, err := b.get(id)
	return s.Endpoint, err
}

func (b *Bolt) get(id string) (stored, error) {
	var s stored
	err := b.db.View(func(tx store.Tx) error {
		v := tx.Bucket(endpointsBucket).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return json.Unmarshal(v, &s)
	})
	return s, err
}

// Delete implements Store.
func (b *Bolt) Delete(id string) error {
	return b.db.Update(func(tx store.Tx) error {
		eps := tx.Bucket(endpointsBucket)
		if eps.Get([]byte(id)) == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err := eps.Delete([]byte(id)); err != nil {
			return err
		}
		out := tx.Bucket(outboxBucket)
		var keys [][]byte
		c := out.Cursor()
		for k, _ := c.Seek(outboxPrefix(id)); k != nil && bytes.HasPrefix(k, outboxPrefix(id)); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := out.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Enable implements Store. The head waiting for the endpoint gets a fresh
// three days, from its next attempt, which is now.
func (b *Bolt) Enable(id string) error {
	err := b.db.Update(func(tx store.Tx) error {
		s, err := getTx(tx, id)
		if err != nil {
			return err
		}
		s.Disabled, s.DisabledReason = time.Time{}, ""
		if err := putTx(tx, s); err != nil {
			return err
		}
		k, v := tx.Bucket(outboxBucket).Cursor().Seek(outboxPrefix(id))
		if k == nil || !bytes.HasPrefix(k, outboxPrefix(id)) {
			return nil
		}
		var d delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		d.First, d.Next = time.Time{}, time.Time{}
		return putDelivery(tx, k, d)
	})
	if err == nil {
		b.Committed()
	}
	return err
}

func getTx(tx store.Tx, id string) (stored, error) {
	var s stored
	v := tx.Bucket(endpointsBucket).Get([]byte(id))
	if v == nil {
		return s, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return s, json.Unmarshal(v, &s)
}

func putTx(tx store.Tx, s stored) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return tx.Bucket(endpointsBucket).Put([]byte(s.ID), v)
}

func putDelivery(tx store.Tx, key []byte, d delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return tx.Bucket(outboxBucket).Put(key, v)
}

// outboxPrefix starts the keys of an endpoint's deliveries. IDs have a
// fixed length, so no endpoint's prefix starts another's.
func outboxPrefix(id string) []byte { return []byte(id + "/") }

// Put queues evs for every enabled endpoint of their user that wants them,
// in the transaction that stores the events (events.Outbox). It reads only
// tx and memory, so running it again for one commit is harmless.
func (b *Bolt) Put(tx store.Tx, evs []events.Event) error {
	var eps []stored
	for _, e := range evs {
		if e.User == "" {
			continue // the relay's own mail: no one registered for it
		}
		if eps == nil {
			var err error
			if eps, err = enabledEndpoints(tx); err != nil {
				return err
			}
		}
		for _, ep := range eps {
			if ep.User != e.User || !ep.Wants(e.Kind) {
				continue
			}
			body, err := json.Marshal(Payload{Type: "message." + string(e.Kind), Timestamp: e.At.UTC(), Data: e})
			if err != nil {
				return err
			}
			out := tx.Bucket(outboxBucket)
			seq, err := out.NextSequence()
			if err != nil {
				return err
			}
			key := binary.BigEndian.AppendUint64(outboxPrefix(ep.ID), seq)
			d := delivery{ID: "msg_" + e.ID + "_" + strings.TrimPrefix(ep.ID, "ep_"), Body: body}
			if err := putDelivery(tx, key, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// enabledEndpoints reads the enabled endpoints in tx. There are few (a
// handful per user), so every recording reads them all rather than keep
// an index that would have to follow every change.
func enabledEndpoints(tx store.Tx) ([]stored, error) {
	eps := []stored{}
	err := tx.Bucket(endpointsBucket).ForEach(func(k, v []byte) error {
		var s stored
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("webhook endpoint %s: %w", k, err)
		}
		if s.Disabled.IsZero() {
			eps = append(eps, s)
		}
		return nil
	})
	return eps, err
}

// Committed wakes the Worker: deliveries may have been queued
// (events.Outbox).
func (b *Bolt) Committed() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
