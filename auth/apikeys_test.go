package auth

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

// openKeys opens the keys on a bbolt file of their own, closed at cleanup
// or by the function it returns.
func openKeys(t *testing.T) (*APIKeys, string, func() error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	k, err := NewAPIKeys(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	return k, path, db.Close
}

func TestAPIKeyStoredOnlyAsHash(t *testing.T) {
	k, path, closeDB := openKeys(t)
	key, rec, err := k.Create("alice@example.com", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, APIKeyPrefix) || !strings.HasPrefix(key, rec.Prefix) || len(key) < 30 {
		t.Fatalf("key %q, prefix %q", key, rec.Prefix)
	}
	closeDB()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(key)) || bytes.Contains(raw, []byte(key[len(rec.Prefix):])) {
		t.Fatal("the database file contains the key")
	}
	if !bytes.Contains(raw, hashAPIKey(key)) {
		t.Fatal("the database file lacks the key's hash")
	}
}

func TestAPIKeyVerifyAndRevoke(t *testing.T) {
	k, _, _ := openKeys(t)
	key, rec, err := k.Create("alice@example.com", "billing")
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := k.Create("bob@example.com", "")
	got, err := k.Verify(key)
	if err != nil || got.User != "alice@example.com" || got.LastUsed.IsZero() {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	if _, err := k.Verify(key + "x"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a wrong key: %v", err)
	}
	list, _ := k.List("alice@example.com")
	if len(list) != 1 || list[0].Name != "billing" || list[0].LastUsed.IsZero() {
		t.Fatalf("List = %+v", list)
	}
	// Another user's prefix revokes nothing.
	if _, err := k.Revoke("bob@example.com", rec.Prefix); !errors.Is(err, ErrNoSuchAPIKey) {
		t.Fatalf("revoking another user's key: %v", err)
	}
	if n, err := k.Revoke("alice@example.com", rec.Prefix); err != nil || n != 1 {
		t.Fatalf("Revoke = %d, %v", n, err)
	}
	if _, err := k.Verify(key); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a revoked key verified: %v", err)
	}
	if _, err := k.Verify(other); err != nil {
		t.Fatalf("another user's key stopped working: %v", err)
	}
}
