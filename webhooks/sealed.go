package webhooks

import (
	"encoding/json"
	"fmt"

	"outbound/store"
)

// Signing secrets at rest: each endpoint's secret is sealed under the
// relay's master key by the Sealer (smarthost.Store, whose key also seals
// the smarthost passwords and the DKIM keys), with secretAD as associated
// data, so that a sealed secret copied onto another endpoint's record, or
// another store's sealed value copied onto an endpoint's, does not open.
// The master key rotation re-seals them (Reseal) in its own transaction.

// Sealer seals and opens secrets under the relay's master key
// (smarthost.Store is one; its key rotation re-seals ours too, through
// Bolt.Reseal). A store in another database reuses it as it is.
type Sealer interface {
	// SealCommit runs commit with a seal function and keeps the master
	// key from changing until commit returns, so that the secrets commit
	// seals and stores are re-sealed by any later rotation (a rotation
	// committing between a seal and its commit would leave the secret
	// sealed under a key nothing opens any more).
	SealCommit(commit func(seal func(ad, plain []byte) ([]byte, error)) error) error
	// Open opens what seal sealed with the same ad.
	Open(ad, sealed []byte) ([]byte, error)
}

// secretAD names the endpoint a secret belongs to. IDs have a fixed form
// without '/' ("ep_" and 16 hex digits), so the ID first keeps any user
// name from making two endpoints' data alike; the "webhook/" prefix keeps
// it apart from the other stores' ("dkim/...", smarthost names, which
// have no '/').
func secretAD(user, id string) []byte { return []byte("webhook/" + id + "/" + user) }

// storeNew stores a new endpoint with secret sealed.
func (b *Bolt) storeNew(s stored, secret string) error {
	return b.sealer.SealCommit(func(seal func(ad, plain []byte) ([]byte, error)) error {
		sealed, err := seal(secretAD(s.User, s.ID), []byte(secret))
		if err != nil {
			return fmt.Errorf("sealing the signing secret: %w", err)
		}
		s.SealedSecret = sealed
		return b.db.Update(func(tx store.Tx) error { return putTx(tx, s) })
	})
}

// openSecret returns endpoint id's signing secret, opened, for the Worker
// to sign with: it must never be logged nor answered.
func (b *Bolt) openSecret(id string) (string, error) {
	// Two reads: a key rotation that commits between the first read and
	// the opening re-sealed the secret under the key now in use.
	for range 2 {
		s, err := b.get(id)
		if err != nil {
			return "", err
		}
		if p, err := b.sealer.Open(secretAD(s.User, s.ID), s.SealedSecret); err == nil {
			return string(p), nil
		}
	}
	return "", fmt.Errorf("cannot open the signing secret of webhook endpoint %s: it was sealed under another master key (check OUTBOUND_MASTER_KEY or data_dir/secrets.key), or the record was altered", id)
}

// sealClearSecrets seals the secrets that data directories from before
// sealing kept in clear, all in one transaction (a crash before its commit
// leaves them in clear for the next start). The old pages keep the clear
// text until bbolt reuses them, and older backups keep it for good: an
// operator who cares deletes the endpoint and adds it again, for a new
// secret.
func (b *Bolt) sealClearSecrets() error {
	err := b.sealer.SealCommit(func(seal func(ad, plain []byte) ([]byte, error)) error {
		return b.db.Update(func(tx store.Tx) error {
			var clear []stored
			err := tx.Bucket(endpointsBucket).ForEach(func(k, v []byte) error {
				var s stored
				if err := json.Unmarshal(v, &s); err != nil {
					return fmt.Errorf("webhook endpoint %s: %w", k, err)
				}
				if s.ClearSecret != "" {
					clear = append(clear, s)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, s := range clear {
				if s.SealedSecret, err = seal(secretAD(s.User, s.ID), []byte(s.ClearSecret)); err != nil {
					return fmt.Errorf("webhook endpoint %s: %w", s.ID, err)
				}
				s.ClearSecret = ""
				if err := putTx(tx, s); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("sealing the webhook signing secrets kept in clear: %w", err)
	}
	return nil
}

// Reseal re-seals every signing secret with reseal, inside tx: the master
// key rotation (smarthost.Store.AlsoReseal) calls it.
func (b *Bolt) Reseal(tx store.Tx, reseal func(ad, sealed []byte) ([]byte, error)) error {
	var all []stored
	err := tx.Bucket(endpointsBucket).ForEach(func(k, v []byte) error {
		var s stored
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("webhook endpoint %s: %w", k, err)
		}
		all = append(all, s)
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range all {
		if s.SealedSecret, err = reseal(secretAD(s.User, s.ID), s.SealedSecret); err != nil {
			return err
		}
		if err := putTx(tx, s); err != nil {
			return err
		}
	}
	return nil
}
