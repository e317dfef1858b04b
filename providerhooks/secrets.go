package providerhooks

import (
	"encoding/json"
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
