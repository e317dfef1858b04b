package providerhooks

import (
	"slices"
	"testing"
)

func TestSecretsFromMapByTheirNames(t *testing.T) {
	names := SecretNames()
	for _, want := range []string{"mailgun_signing_key", "sendgrid_public_key", "postmark_user", "postmark_password", "sns_topic_arn", "generic_secret"} {
		if !slices.Contains(names, want) {
			t.Errorf("SecretNames() = %v, lacks %s", names, want)
		}
	}
	s := SecretsFromMap(map[string]string{"mailgun_signing_key": "k", "postmark_password": "p", "nonsense": "x"})
	if s != (Secrets{MailgunSigningKey: "k", PostmarkPassword: "p"}) {
		t.Fatalf("got %+v", s)
	}
}
