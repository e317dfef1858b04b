package smarthost

import (
	"encoding/json"
	"fmt"

	"outbound/store"
)

// The secrets a smarthost's provider uses to sign (or authenticate) the
// event callbacks it sends the relay (package providerhooks reads them):
// a map of named secrets ("mailgun_signing_key", "postmark_password", ...),
// sealed as one JSON value like the password, with the smarthost's name
// and "/webhook-secrets" as additional data, so that neither sealed value
// can stand in for the other. Package smarthost keeps them without
// knowing their names; the admin API says which names exist.

// webhookAD is the additional data the webhook secrets are sealed with.
func webhookAD(name string) []byte { return []byte(name + "/webhook-secrets") }

// WebhookSecrets returns the smarthost's webhook secrets, decrypted (an
// empty map when it has none), for the webhook listener only: they must
// never be logged or shown whole.
func (s *Store) WebhookSecrets(name string) (map[string]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	return s.webhookSecrets(h)
}

func (s *Store) webhookSecrets(h *Smarthost) (map[string]string, error) {
	out := map[string]string{}
	if len(h.SealedWebhookSecrets) == 0 {
		return out, nil
	}
	p, err := open(s.aead, webhookAD(h.Name), h.SealedWebhookSecrets)
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt the webhook secrets of smarthost %s: they were sealed under another master key (check %s or the key file%s), or the record was altered", h.Name, KeyEnv, s.sharedKeyHint())
	}
	if err := json.Unmarshal(p, &out); err != nil {
		return nil, fmt.Errorf("the webhook secrets of smarthost %s: %w", h.Name, err)
	}
	return out, nil
}

// MaskedWebhookSecrets returns the names of the smarthost's webhook
// secrets with their values masked (see Mask).
func (s *Store) MaskedWebhookSecrets(h *Smarthost) (map[string]string, error) {
	s.mu.RLock()
	all, err := s.webhookSecrets(h)
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	for k, v := range all {
		all[k] = Mask(v)
	}
	return all, nil
}

// SetWebhookSecrets changes the smarthost's webhook secrets in one
// transaction: each name in set gets its value, an empty value removes it;
// names not in set are kept.
func (s *Store) SetWebhookSecrets(name string, set map[string]string) error {
	return s.edit(name, func(_ store.Bucket, h *Smarthost) error {
		all, err := s.webhookSecrets(h)
		if err != nil {
			return err
		}
		for k, v := range set {
			if v == "" {
				delete(all, k)
			} else {
				all[k] = v
			}
		}
		h.SealedWebhookSecrets = nil
		if len(all) > 0 {
			p, err := json.Marshal(all)
			if err != nil {
				return err
			}
			if h.SealedWebhookSecrets, err = seal(s.aead, webhookAD(name), p); err != nil {
				return err
			}
		}
		return nil
	})
}
