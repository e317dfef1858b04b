package webhooks

import (
	"context"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"outbound/smarthost"
	"outbound/store"
)

// racingSealer is the smarthost store with a master key rotation started
// right after the first secret a SealCommit seals and waited for once the
// SealCommit returned: a store that committed that secret only after
// SealCommit would lose it to the rotation.
type racingSealer struct {
	*smarthost.Store
	done chan struct{} // closed when the rotation returned
	err  error         // the rotation's
}

func (s *racingSealer) SealCommit(commit func(seal smarthost.SealFunc) error) error {
	err := s.Store.SealCommit(func(seal smarthost.SealFunc) error {
		return commit(func(ad, plain []byte) ([]byte, error) {
			sealed, err := seal(ad, plain)
			if s.done == nil {
				s.done = make(chan struct{})
				go func() {
					defer close(s.done)
					s.err = s.Store.RotateKey(smarthost.NewKey())
				}()
			}
			return sealed, err
		})
	})
	if s.done != nil {
		<-s.done
	}
	return err
}

func TestSecretRegisteredDuringAMasterKeyRotationStaysReadable(t *testing.T) {
	t.Setenv(smarthost.KeyEnv, "")
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "t.db"), 0o600, nil)
	must(t, err)
	t.Cleanup(func() { db.Close() })
	hosts, err := smarthost.Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	must(t, err)
	s := &racingSealer{Store: hosts}
	wh, err := OpenBolt(store.Bolt(db), Policy{AllowPrivate: true}, s)
	must(t, err)
	hosts.AlsoReseal(wh.Reseal)

	ep, secret, err := wh.Register(context.Background(), "alice", "https://127.0.0.1:1/hooks", nil)
	must(t, err)
	if s.done == nil {
		t.Fatal("Register sealed nothing through SealCommit")
	}
	must(t, s.err)
	got, err := wh.openSecret(ep.ID)
	if err != nil {
		t.Fatalf("the secret registered during the rotation: %v", err)
	}
	if got != secret {
		t.Fatal("the opened secret is not the one Register returned")
	}
}
