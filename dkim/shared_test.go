package dkim_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outbound/dkim"
	"outbound/internal/pgtest"
	"outbound/smarthost"
	"outbound/store"
)

// openNode is a relay node's DKIM store on the PostgreSQL database dsn,
// sealing under the master key in keyPath.
func openNode(t *testing.T, dsn, node, keyPath string) *dkim.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	hosts, err := smarthost.Open(db, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := dkim.Open(db, hosts, nil)
	if err != nil {
		t.Fatal(err)
	}
	hosts.AlsoReseal(keys.Reseal)
	return keys
}

// A node that signed with a domain's key (and keeps it opened) signs with
// the new one once another node sharing the store rotated it.
func TestSharedStoreSignsWithAKeyRotatedOnAnotherNode(t *testing.T) {
	t.Setenv(smarthost.KeyEnv, "")
	dsn := pgtest.Shared(t).NewDatabase(t)
	keyA, keyB := filepath.Join(t.TempDir(), "secrets.key"), filepath.Join(t.TempDir(), "secrets.key")
	a := openNode(t, dsn, "a", keyA)
	key, err := os.ReadFile(keyA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyB, key, 0o600); err != nil {
		t.Fatal(err)
	}
	b := openNode(t, dsn, "b", keyB)
	const message = "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"
	selector := func() string {
		sig, err := b.Sign("example.org", []byte(message), nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(string(sig), "s=one;"):
			return "one"
		case strings.Contains(string(sig), "s=two;"):
			return "two"
		}
		return string(sig)
	}
	if _, err := a.Generate("example.org", "one", dkim.Ed25519); err != nil {
		t.Fatal(err)
	}
	if got := selector(); got != "one" {
		t.Fatalf("node b signs with %q, want selector one", got)
	}
	if _, _, err := a.Rotate("example.org", "two", dkim.Ed25519); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for selector() != "two" {
		if time.Now().After(deadline) {
			t.Fatalf("node b still signs with %q after node a rotated to two", selector())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
