package admin_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"outbound/admin"
	"outbound/dkim"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/smarthost"
	"outbound/store"
	"outbound/webhooks"
)

// sealedRig is the rig with every store that seals under the master key in
// one bbolt file, registered for its rotation as serve does (the rig's own
// Smarthosts is not the one its API uses then: use the one returned).
func sealedRig(t *testing.T) (*admintest.Rig, *smarthost.Store, *dkim.Store) {
	t.Helper()
	db := testutil.OpenDB(t)
	hosts, err := smarthost.Open(store.Bolt(db), filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := dkim.Open(store.Bolt(db), hosts, nil)
	if err != nil {
		t.Fatal(err)
	}
	hosts.AlsoReseal(keys.Reseal)
	hooks, err := webhooks.OpenBolt(store.Bolt(db), webhooks.Policy{}, hosts)
	if err != nil {
		t.Fatal(err)
	}
	hosts.AlsoReseal(hooks.Reseal)
	r := admintest.NewWith(t, func(o *admin.Options) { o.Smarthosts, o.DKIM, o.Webhooks = hosts, keys, hooks })
	return r, hosts, keys
}

// The rotation's answer counts every kind of sealed value, not only the
// smarthosts, and all of them still open under the new key.
func TestKeyRotateCountsDKIMKeysAndWebhookSecrets(t *testing.T) {
	r, hosts, keys := sealedRig(t)
	r.AddUsers(t, "alice@example.org")
	r.AddSmarthost(t, "sg")
	r.AddSmarthost(t, "mg")
	if _, err := r.Client.SetWebhookSecrets("mg", map[string]string{"mailgun_signing_key": "key-0123456789abcdef-signing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.GenerateDKIM("example.org", admin.DKIMKeyRequest{Selector: "s1"}); err != nil { // ed25519 and rsa
		t.Fatal(err)
	}
	for _, u := range []string{"https://93.184.216.34/a", "https://93.184.216.34/b"} {
		if _, err := r.Client.AddWebhook("alice@example.org", admin.WebhookRequest{URL: u}); err != nil {
			t.Fatal(err)
		}
	}
	code, body := r.Call(t, "POST", "/api/key-rotate", admintest.Token, nil)
	if code != 200 {
		t.Fatalf("key-rotate: %d %s", code, body)
	}
	var got admin.KeyRotation
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := admin.KeyRotation{Reencrypted: 7, SmarthostPasswords: 2, ProviderWebhookSecrets: 1, DKIMKeys: 2, WebhookEndpointSecrets: 2}
	if got != want {
		t.Errorf("key-rotate answered %s, want %+v", body, want)
	}
	if tr, err := r.Client.TestSmarthost("sg"); err != nil || !tr.Test.OK {
		t.Errorf("smarthost password after the rotation: %+v %v", tr, err)
	}
	if s, err := hosts.WebhookSecrets("mg"); err != nil || s["mailgun_signing_key"] == "" {
		t.Errorf("provider webhook secrets after the rotation: %v", err)
	}
	if _, err := keys.Sign("example.org", []byte("From: alice@example.org\r\nSubject: x\r\n\r\nHello.\r\n"), nil); err != nil {
		t.Errorf("DKIM signing after the rotation: %v", err)
	}
}
