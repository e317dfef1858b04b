package smarthost

import (
	"testing"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

// A value another store seals through SealCommit while a key rotation
// starts: the rotation waits for the value's commit and re-seals it.
func TestRotationStartedDuringSealCommitResealsItsValue(t *testing.T) {
	t.Setenv(KeyEnv, "")
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), dir+"/secrets.key")
	if err != nil {
		t.Fatal(err)
	}
	other, ad, name := []byte("other-store"), []byte("other/v"), []byte("v")
	s.AlsoReseal(func(tx store.Tx, reseal func(ad, sealed []byte) ([]byte, error)) error {
		b := tx.Bucket(other)
		if b == nil {
			return nil // a rotation that came first: nothing sealed yet
		}
		v, err := reseal(ad, b.Get(name))
		if err != nil {
			return err
		}
		return b.Put(name, v)
	})

	rotated := make(chan error, 1)
	var late SealFunc
	err = s.SealCommit(func(seal SealFunc) error {
		late = seal
		v, err := seal(ad, []byte("secret"))
		if err != nil {
			return err
		}
		go func() { rotated <- s.RotateKey(NewKey()) }()
		if s.mu.TryLock() {
			s.mu.Unlock()
			t.Error("SealCommit does not hold the key: a rotation could commit before this commit")
		}
		return db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(other)
			if err != nil {
				return err
			}
			return b.Put(name, v)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-rotated; err != nil {
		t.Fatalf("key rotation: %v", err)
	}
	var stored []byte
	if err := db.View(func(tx *bolt.Tx) error {
		stored = append(stored, tx.Bucket(other).Get(name)...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Open(ad, stored); err != nil || string(p) != "secret" {
		t.Fatalf("the value does not open under the new key: %q, %v", p, err)
	}
	if _, err := late([]byte("x"), []byte("y")); err == nil {
		t.Error("a SealFunc kept past its SealCommit still seals (under a key that may have changed)")
	}
}
