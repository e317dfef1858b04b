package smarthost

import (
	"bytes"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

// Webhook secrets are stored sealed (never in clear in the file), merged
// on update, shown only masked, and survive a key rotation.
func TestWebhookSecretsSealedMergedMaskedAndRotated(t *testing.T) {
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sample("mg"), secret); err != nil {
		t.Fatal(err)
	}
	const key = "key-0123456789abcdef-signing"
	if err := s.SetWebhookSecrets("mg", map[string]string{"mailgun_signing_key": key, "generic_secret": "g-secret-abcdefgh"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWebhookSecrets("mg", map[string]string{"generic_secret": ""}); err != nil {
		t.Fatal(err)
	}
	got, err := s.WebhookSecrets("mg")
	if err != nil || len(got) != 1 || got["mailgun_signing_key"] != key {
		t.Fatalf("secrets %v %v, want only the signing key", got, err)
	}
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get([]byte("mg")); bytes.Contains(v, []byte(key)) {
			t.Error("the signing key is in clear in the database")
		}
		return nil
	})
	h, _ := s.Get("mg")
	masked, err := s.MaskedWebhookSecrets(h)
	if err != nil || masked["mailgun_signing_key"] != Mask(key) {
		t.Fatalf("masked %v %v", masked, err)
	}
	// The sealed password cannot be opened as the webhook secrets.
	h.SealedWebhookSecrets = h.SealedPassword
	if _, err := s.webhookSecrets(h); err == nil {
		t.Error("the sealed password opened as webhook secrets")
	}
	if err := s.RotateKey(NewKey()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.WebhookSecrets("mg"); err != nil || got["mailgun_signing_key"] != key {
		t.Fatalf("after rotation: %v %v", got, err)
	}
}
