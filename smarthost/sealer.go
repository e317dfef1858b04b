package smarthost

import (
	"errors"
	"sync/atomic"

	"outbound/store"
)

// The master key seals more than this store's own records (the smarthost
// passwords and the providers' webhook secrets): other stores in the same
// bbolt file seal their secrets through the Store too — package dkim its
// private keys, package webhooks its endpoints' signing secrets — so there
// is one key, one AEAD and one rotation. RotateKey re-seals their values
// in the same transaction as the passwords, through the Resealer each
// registers with AlsoReseal.
//
// A value sealed under the old key and committed after a rotation would
// be lost for good: the rotation re-sealed every value but it, and the
// new key does not open it. This store's own writes hold the key (mu, for
// reading) from sealing to commit, which makes RotateKey wait; the other
// stores do the same through SealCommit.

// SealFunc seals plain under the master key with ad as additional data.
// Callers choose an ad of their own prefix ("dkim/...") so that no sealed
// value of theirs can stand in for a smarthost's.
type SealFunc = func(ad, plain []byte) ([]byte, error)

// SealCommit runs commit with a SealFunc and keeps the master key from
// changing until commit returns: commit seals its values and commits them
// (its own db.Update), and a key rotation cannot commit in between, since
// RotateKey waits for commit to return and then re-seals what it stored.
// The SealFunc refuses to seal once commit returned.
//
// Sealing (or committing) outside SealCommit is the bug it exists for. In
// return, commit must not run inside a bbolt transaction it holds while
// calling SealCommit, nor call the Store's own methods: a rotation waiting
// for the key would wait for commit, and commit for it.
func (s *Store) SealCommit(commit func(seal SealFunc) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var done atomic.Bool
	defer done.Store(true)
	a := s.aead
	return commit(func(ad, plain []byte) ([]byte, error) {
		if done.Load() {
			return nil, errors.New("sealing after SealCommit returned: the master key may have changed")
		}
		return seal(a, ad, plain)
	})
}

// Open opens what a SealFunc sealed with the same ad. A caller that read
// the sealed value before a rotation committed gets an error: reading the
// value again gets it re-sealed under the key now in use.
func (s *Store) Open(ad, sealed []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return open(s.aead, ad, sealed)
}

// A Resealer rewrites every value its store sealed, inside RotateKey's
// transaction, with reseal (open under the old key, seal under the new).
// An error aborts the whole rotation.
type Resealer func(tx store.Tx, reseal func(ad, sealed []byte) ([]byte, error)) error

// AlsoReseal makes RotateKey re-seal another store's values with f.
func (s *Store) AlsoReseal(f Resealer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resealers = append(s.resealers, f)
}
