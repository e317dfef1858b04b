package smarthost

import (
	bolt "go.etcd.io/bbolt"
)

// The master key protects other stores' secrets too (package dkim's
// private keys): they seal through the Store, so there is one key, one
// AEAD and one rotation, and RotateKey re-seals theirs in the same
// transaction as the passwords through the Resealer they register.

// Seal seals plain under the master key with ad as additional data.
// Callers choose an ad of their own prefix ("dkim/...") so that no sealed
// value of theirs can stand in for a smarthost's.
func (s *Store) Seal(ad, plain []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return seal(s.aead, ad, plain)
}

// Open opens what Seal sealed with the same ad.
func (s *Store) Open(ad, sealed []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return open(s.aead, ad, sealed)
}

// A Resealer rewrites every value its store sealed, inside RotateKey's
// transaction, with reseal (open under the old key, seal under the new).
// An error aborts the whole rotation.
type Resealer func(tx *bolt.Tx, reseal func(ad, sealed []byte) ([]byte, error)) error

// AlsoReseal makes RotateKey re-seal another store's values with f.
func (s *Store) AlsoReseal(f Resealer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resealers = append(s.resealers, f)
}
