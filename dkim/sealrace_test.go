package dkim_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/dkim"
	"outbound/smarthost"
	"outbound/store"
)

// A master key rotation and the creation of a DKIM key, interleaved in
// the orders that lost keys: the rotation starting between the new key's
// sealing and its commit, and committing between a signer's read of the
// keys and their opening.

// rotation is a RotateKey running in its own goroutine.
type rotation struct {
	done chan struct{}
	err  error
}

func startRotation(hosts *smarthost.Store) *rotation {
	r := &rotation{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = hosts.RotateKey(smarthost.NewKey())
	}()
	return r
}

// racingSealer is the smarthost store with a key rotation run in the
// worst place: started right after the first value a SealCommit seals
// and waited for once the SealCommit returned (rotateOnSeal), so that it
// commits before any value sealed in there and committed only later; or
// run just before the first Open (rotateOnOpen).
type racingSealer struct {
	*smarthost.Store
	rotateOnSeal bool
	rotateOnOpen bool
	rot          *rotation
}

func (s *racingSealer) SealCommit(commit func(seal smarthost.SealFunc) error) error {
	err := s.Store.SealCommit(func(seal smarthost.SealFunc) error {
		return commit(func(ad, plain []byte) ([]byte, error) {
			sealed, err := seal(ad, plain)
			if s.rotateOnSeal && s.rot == nil {
				s.rot = startRotation(s.Store)
			}
			return sealed, err
		})
	})
	if s.rot != nil {
		<-s.rot.done
	}
	return err
}

func (s *racingSealer) Open(ad, sealed []byte) ([]byte, error) {
	if s.rotateOnOpen && s.rot == nil {
		s.rot = startRotation(s.Store)
		<-s.rot.done
	}
	return s.Store.Open(ad, sealed)
}

// newRacingRig is newRig with the racing sealer between the DKIM store
// and the smarthost store.
func newRacingRig(t *testing.T, s *racingSealer) *rig {
	t.Helper()
	t.Setenv(smarthost.KeyEnv, "")
	dir := t.TempDir()
	r := &rig{dbPath: filepath.Join(dir, "outbound.db"), now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db, err := bolt.Open(r.dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if r.hosts, err = smarthost.Open(store.Bolt(db), filepath.Join(dir, "secrets.key")); err != nil {
		t.Fatal(err)
	}
	s.Store = r.hosts
	if r.keys, err = dkim.Open(store.Bolt(db), s, func() time.Time { return r.now }); err != nil {
		t.Fatal(err)
	}
	r.hosts.AlsoReseal(r.keys.Reseal)
	return r
}

// signs checks that the rig's keys of example.org sign msg and that the
// signature verifies against the published records.
func (r *rig) signs(t *testing.T) {
	t.Helper()
	sig, err := r.keys.Sign("example.org", []byte(message), nil)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	if len(sig) == 0 {
		t.Fatal("no signature")
	}
	records, err := r.keys.Records("example.org")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, records, append(sig, message...))
}

func TestKeyCreatedDuringAMasterKeyRotationStaysReadable(t *testing.T) {
	s := &racingSealer{rotateOnSeal: true}
	r := newRacingRig(t, s)
	// Both algorithms: the second key may be sealed while the rotation
	// already waits for the master key.
	if _, err := r.keys.Generate("example.org", "s1", "both"); err != nil {
		t.Fatal(err)
	}
	if s.rot == nil {
		t.Fatal("Generate sealed nothing through SealCommit")
	}
	<-s.rot.done
	if s.rot.err != nil {
		t.Fatalf("key rotation: %v", s.rot.err)
	}
	keys, err := r.keys.List("example.org")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, err := r.hosts.Open([]byte("dkim/example.org/"+k.Selector), k.SealedPrivate); err != nil {
			t.Fatalf("key %s, created during the rotation, does not open under the new master key: %v", k.Selector, err)
		}
	}
	r.signs(t)
}

func TestRotationBetweenReadingAndOpeningTheKeysDoesNotFailSigning(t *testing.T) {
	s := &racingSealer{}
	r := newRacingRig(t, s)
	if _, err := r.keys.Generate("example.org", "s1", dkim.Ed25519); err != nil {
		t.Fatal(err)
	}
	s.rotateOnOpen = true
	r.signs(t)
	if s.rot == nil {
		t.Fatal("signing opened no key")
	}
	if s.rot.err != nil {
		t.Fatalf("key rotation: %v", s.rot.err)
	}
}
