package webhooks

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
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
	Seal(ad, plain []byte) ([]byte, error)
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
	ad := secretAD(s.User, s.ID)
	for try := 1; ; try++ {
		sealed, err := b.sealer.Seal(ad, []byte(secret))
		if err != nil {
			return fmt.Errorf("sealing the signing secret: %w", err)
		}
		err = b.db.Update(func(tx *bolt.Tx) error {
			if try > 1 {
				// Keep what changed since the first write (deleted: stop).
				cur, err := getTx(tx, s.ID)
				if err != nil {
					return err
				}
				s = cur
			}
			s.SealedSecret = sealed
			return putTx(tx, s)
		})
		if err != nil {
			return err
		}
		// A key rotation that committed between Seal and this commit
		// re-sealed every secret but this one, which the new key does not
		// open: seal it again. Reading it back finds that.
		if _, err := b.openSecret(s.ID); err == nil || try == 3 {
			return err
		}
	}
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
// secret. Sealing happens outside the transaction, since the sealer may
// wait for a key rotation that waits for this transaction.
func (b *Bolt) sealClearSecrets() error {
	sealed := map[string][]byte{} // endpoint ID → sealed secret
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(endpointsBucket).ForEach(func(k, v []byte) error {
			var s stored
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("webhook endpoint %s: %w", k, err)
			}
			if s.ClearSecret == "" {
				return nil
			}
			p, err := b.sealer.Seal(secretAD(s.User, s.ID), []byte(s.ClearSecret))
			if err != nil {
				return fmt.Errorf("sealing the signing secret of webhook endpoint %s: %w", s.ID, err)
			}
			sealed[s.ID] = p
			return nil
		})
	})
	if err != nil || len(sealed) == 0 {
		return err
	}
	err = b.db.Update(func(tx *bolt.Tx) error {
		for id, p := range sealed {
			s, err := getTx(tx, id)
			if err != nil {
				return err
			}
			s.SealedSecret, s.ClearSecret = p, ""
			if err := putTx(tx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sealing the webhook signing secrets kept in clear: %w", err)
	}
	return nil
}

// Reseal re-seals every signing secret with reseal, inside tx: the master
// key rotation (smarthost.Store.AlsoReseal) calls it.
func (b *Bolt) Reseal(tx *bolt.Tx, reseal func(ad, sealed []byte) ([]byte, error)) error {
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
