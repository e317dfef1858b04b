package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/auth"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/store"
)

func TestAPIKeysOverTheAPI(t *testing.T) {
	keys, err := auth.NewAPIKeys(store.Bolt(testutil.OpenDB(t)))
	if err != nil {
		t.Fatal(err)
	}
	r := admintest.NewWith(t, func(o *admin.Options) { o.APIKeys = keys })
	c := r.Client
	if _, err := r.Users.Add("alice@example.com", "correct horse battery", nil); err != nil {
		t.Fatal(err)
	}
	created, err := c.CreateAPIKey("alice@example.com", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Key, auth.APIKeyPrefix) || created.APIKey.Name != "billing" {
		t.Fatalf("created %+v", created)
	}
	if rec, err := keys.Verify(created.Key); err != nil || rec.User != "alice@example.com" {
		t.Fatalf("the key does not verify: %v", err)
	}
	list, err := c.APIKeys("alice@example.com")
	if err != nil || len(list) != 1 || list[0].Prefix != created.APIKey.Prefix {
		t.Fatalf("list %+v, %v", list, err)
	}
	if _, err := c.CreateAPIKey("nobody@example.com", ""); statusOf(err) != http.StatusNotFound {
		t.Fatalf("a key for no user: %v", err)
	}
	if n, err := c.RevokeAPIKey("alice@example.com", created.APIKey.Prefix); err != nil || n != 1 {
		t.Fatalf("revoke: %d, %v", n, err)
	}
	if _, err := keys.Verify(created.Key); err == nil {
		t.Fatal("a revoked key still verifies")
	}
	if _, err := c.RevokeAPIKey("alice@example.com", created.APIKey.Prefix); statusOf(err) != http.StatusNotFound {
		t.Fatalf("revoking again: %v", err)
	}
}

func TestAPIKeysWithoutStoreAre501(t *testing.T) {
	r := admintest.New(t)
	r.Users.Add("alice@example.com", "correct horse battery", nil)
	if _, err := r.Client.APIKeys("alice@example.com"); statusOf(err) != http.StatusNotImplemented {
		t.Fatalf("%v", err)
	}
}
