package sendapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"outbound/store"
)

// The Idempotency-Key across the nodes of a cluster (docs/cluster.md).
//
// A node's answers are in its own bbolt file, written with the message
// (idempotency.go). A client that retries a timed-out request through a
// load balancer may reach another node, which knows nothing of them and
// would queue the message again. So with a shared store (Options.SharedDB)
// a request that the node has no answer for first CLAIMS its key there, in
// one Update (the bucket's writers are serialized across nodes). Bucket
// "send-api-idempotency-claims" maps user + NUL + Idempotency-Key to the
// JSON form of claim. What the claim Update finds decides (judge):
//
//   - nothing, or a record past IdempotencyTTL: this request claims the key
//     (state in_flight) and goes on;
//   - an answer: replayed when the request hash is the same, 422 when not,
//     as on one node;
//   - a claim in flight younger than claimLease: 409, as for two requests
//     at once on one node. An older one is taken over: its node stopped
//     between claiming and answering (or lost its request).
//
// After the message is queued (its answer committed locally with it), the
// claim is replaced by the answer (publish); when it is not queued, the
// claim is deleted (release). A publish or release that fails is kept in
// memory and tried again by Settle.
//
// The node looks at its own answers first, and holds the key's local
// in-flight slot throughout: so a claim of its own that it finds has no
// request behind it (a crash, a release that failed) and is taken over at
// once.
//
// When the shared store cannot be reached (store.ErrUnavailable) the node
// answers from its own answers alone, as one relay does, and logs that
// once per outage: a retry reaching another node then may be queued twice.
//
// Limits: a node that dies in the moment between committing a message and
// publishing its answer leaves a claim in flight; after claimLease another
// node takes it over and a retry there is queued again. The lease compares
// one node's clock with another's: keep the clocks in step (NTP).
var claimsBucket = []byte("send-api-idempotency-claims")

// claimLease is how long a claim in flight keeps other nodes off its key:
// more than a request takes (the listener's write timeout is a minute).
const claimLease = 2 * time.Minute

// The states of a claim.
const (
	stateInFlight = "in_flight"
	stateAnswered = "answered"
)

// claim is a key's record in the shared store.
type claim struct {
	// Request is the SHA-256 of the request body (as answer.Request).
	Request []byte `json:"request"`
	// Node is the node that claimed the key, for the lease and for logs.
	Node string `json:"node"`
	// State is stateInFlight until the answer replaces the claim.
	State string `json:"state"`
	// Claimed is when the node claimed the key (its clock).
	Claimed time.Time `json:"claimed"`
	// Token tells this claim apart from a later one of the same key, so
	// that a late publish or release never touches another's claim.
	Token string `json:"token"`
	// Answer is the first answer, once State is stateAnswered.
	Answer *answer `json:"answer,omitempty"`
}

// verdict is what claiming a key found.
type verdict struct {
	// mine is the claim this request now holds (nil: none was made).
	mine *claim
	// answer is a stored answer to replay or refuse by its hash.
	answer *answer
	// busy: another node is processing the key.
	busy bool
}

type sharedIdempotency struct {
	db   store.DB
	node string
	now  func() time.Time
	log  *slog.Logger

	// down: the store was found unreachable and not reached since
	// (logged once per outage).
	down atomic.Bool

	// pending are the publishes and releases that failed, by claim
	// token, for Settle.
	mu      sync.Mutex
	pending map[string]pendingWrite
}

// pendingWrite is a publish (answer set) or a release of a claim.
type pendingWrite struct {
	user, key string
	mine      *claim
	answer    *answer
}

func newSharedIdempotency(db store.DB, node string, now func() time.Time, log *slog.Logger) (*sharedIdempotency, error) {
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(claimsBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating %s bucket: %w", claimsBucket, err)
	}
	return &sharedIdempotency{db: db, node: node, now: now, log: log, pending: map[string]pendingWrite{}}, nil
}

// claim claims user's key for a request of hash req. With the store
// unreachable it returns a zero verdict and nil: the caller goes on with
// its own answers alone.
func (s *sharedIdempotency) claim(user, key string, req []byte) (verdict, error) {
	var (
		v     verdict
		taken *claim // another node's claim past its lease, taken over
	)
	now := s.now()
	err := s.db.Update(func(tx store.Tx) error {
		v, taken = verdict{}, nil // Update may run this more than once
		b, err := tx.CreateBucketIfNotExists(claimsBucket)
		if err != nil {
			return err
		}
		k := idemKey(user, key)
		if old := decodeClaim(b.Get(k)); old != nil {
			v.answer, v.busy = s.judge(old, now)
			if v.answer != nil || v.busy {
				return nil
			}
			if old.State == stateInFlight && old.Node != s.node && !expired(old, now) {
				taken = old
			}
		}
		mine := &claim{Request: req, Node: s.node, State: stateInFlight, Claimed: now, Token: newToken()}
		raw, err := json.Marshal(mine)
		if err != nil {
			return err
		}
		if err := b.Put(k, raw); err != nil {
			return err
		}
		v.mine = mine
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			s.unreachable(err)
			return verdict{}, nil
		}
		return verdict{}, err
	}
	s.reachable()
	if taken != nil {
		s.log.Warn("took over an Idempotency-Key claim past its lease", "user", user, "node", taken.Node, "claimed", taken.Claimed)
	}
	return v, nil
}

// judge says what a request does about the key's record old: replay old's
// answer (or refuse it, by the request hash), wait (busy: whatever the
// body, as on one node), or neither (the key is free). The caller holds
// the key's local in-flight slot and has no local answer.
func (s *sharedIdempotency) judge(old *claim, now time.Time) (prev *answer, busy bool) {
	switch {
	case old.State == stateAnswered && old.Answer != nil:
		if now.Sub(old.Answer.Created) >= IdempotencyTTL {
			return nil, false
		}
		return old.Answer, false
	case old.State != stateInFlight:
		return nil, false // unknown: overwritten
	case old.Node == s.node:
		// This node's own, with no request behind it now.
		return nil, false
	case now.Sub(old.Claimed) < claimLease:
		return nil, true
	}
	return nil, false
}

// publish replaces mine by its answer a, once the message is queued.
func (s *sharedIdempotency) publish(user, key string, mine *claim, a *answer) {
	s.finish(pendingWrite{user: user, key: key, mine: mine, answer: a})
}

// release deletes mine: its message was not queued.
func (s *sharedIdempotency) release(user, key string, mine *claim) {
	s.finish(pendingWrite{user: user, key: key, mine: mine})
}

// finish writes p, or keeps it for Settle when the store fails.
func (s *sharedIdempotency) finish(p pendingWrite) {
	err := s.write(p)
	if err == nil {
		s.reachable()
		return
	}
	if errors.Is(err, store.ErrUnavailable) {
		s.unreachable(err)
	} else {
		s.log.Error("writing an Idempotency-Key claim to the shared store failed; trying again later", "user", p.user, "err", err)
	}
	s.mu.Lock()
	s.pending[p.mine.Token] = p
	s.mu.Unlock()
}

// write publishes or releases p.mine, if the key still holds it: a claim
// taken over by another node stays as it is.
func (s *sharedIdempotency) write(p pendingWrite) error {
	return s.db.Update(func(tx store.Tx) error {
		b, err := tx.CreateBucketIfNotExists(claimsBucket)
		if err != nil {
			return err
		}
		k := idemKey(p.user, p.key)
		cur := decodeClaim(b.Get(k))
		if cur == nil && p.answer == nil {
			return nil
		}
		if cur != nil && cur.Token != p.mine.Token {
			if p.answer != nil {
				s.log.Warn("an Idempotency-Key answered here was claimed meanwhile by another node", "user", p.user, "node", cur.Node)
			}
			return nil
		}
		if p.answer == nil {
			return b.Delete(k)
		}
		done := *p.mine
		done.State, done.Answer = stateAnswered, p.answer
		raw, err := json.Marshal(&done)
		if err != nil {
			return err
		}
		return b.Put(k, raw)
	})
}

// Settle tries again the publishes and releases that failed (quietly
// while the store is unreachable); the server calls it periodically.
func (s *sharedIdempotency) Settle() error {
	s.mu.Lock()
	todo := make([]pendingWrite, 0, len(s.pending))
	for _, p := range s.pending {
		todo = append(todo, p)
	}
	s.mu.Unlock()
	for _, p := range todo {
		if err := s.write(p); errors.Is(err, store.ErrUnavailable) {
			s.unreachable(err) // the next call tries again
			return nil
		} else if err != nil {
			return err
		}
		s.mu.Lock()
		delete(s.pending, p.mine.Token)
		s.mu.Unlock()
	}
	if len(todo) > 0 {
		s.reachable()
	}
	return nil
}

// purgeBatch bounds the keys one purging Update deletes, so that claims
// wait on the bucket's lock only briefly.
const purgeBatch = 500

// Purge deletes the records past IdempotencyTTL: found in a View, then
// deleted in short Updates that check each again.
func (s *sharedIdempotency) Purge() error {
	now := s.now()
	var old [][]byte
	err := s.db.View(func(tx store.Tx) error {
		old = old[:0]
		b := tx.Bucket(claimsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if expired(decodeClaim(v), now) {
				old = append(old, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for len(old) > 0 {
		batch := old[:min(len(old), purgeBatch)]
		old = old[len(batch):]
		err := s.db.Update(func(tx store.Tx) error {
			b := tx.Bucket(claimsBucket)
			if b == nil {
				return nil
			}
			for _, k := range batch {
				if expired(decodeClaim(b.Get(k)), now) {
					if err := b.Delete(k); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// expired says whether a record (nil: unreadable) is past IdempotencyTTL.
func expired(c *claim, now time.Time) bool {
	if c == nil {
		return true
	}
	at := c.Claimed
	if c.Answer != nil {
		at = c.Answer.Created
	}
	return now.Sub(at) >= IdempotencyTTL
}

// decodeClaim is the claim in v, or nil when there is none (or it does not
// parse: then it is overwritten or purged).
func decodeClaim(v []byte) *claim {
	if v == nil {
		return nil
	}
	c := new(claim)
	if json.Unmarshal(v, c) != nil {
		return nil
	}
	return c
}

func newToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// unreachable logs, once per outage, that the node falls back on its own
// answers.
func (s *sharedIdempotency) unreachable(err error) {
	if !s.down.Swap(true) {
		s.log.Warn("the shared store cannot be reached: Idempotency-Key answers are this node's own until it can, so a retry reaching another node may be queued again", "err", err)
	}
}

func (s *sharedIdempotency) reachable() {
	if s.down.Swap(false) {
		s.log.Info("the shared store is reachable again: Idempotency-Keys are claimed across the nodes")
	}
}
