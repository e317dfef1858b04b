package providerhooks

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
)

// SecretNames are the names of the Secrets fields as a smarthost stores
// them and the admin API takes them (their JSON names).
func SecretNames() []string {
	t := reflect.TypeFor[Secrets]()
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

// SecretsFromMap reads Secrets from a smarthost's stored map (see
// smarthost.Store.WebhookSecrets); unknown names are ignored.
func SecretsFromMap(m map[string]string) Secrets {
	var s Secrets
	b, _ := json.Marshal(m)
	json.Unmarshal(b, &s)
	return s
}

// Validate says what is wrong with s, so that a secret that could never
// verify anything is refused when it is set rather than at the first
// callback: the SendGrid key must be a base64 DER ECDSA public key.
func (s Secrets) Validate() error {
	if s.SendGridPublicKey != "" {
		if _, err := sendGridKey(s.SendGridPublicKey); err != nil {
			return err
		}
	}
	if (s.PostmarkUser == "") != (s.PostmarkPassword == "") {
		return errors.New("postmark_user and postmark_password go together")
	}
	return nil
}
