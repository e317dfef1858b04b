package smarthost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outbound/internal/pgtest"
	"outbound/store"
)

// openNode opens a node's store on the PostgreSQL database dsn, closed at
// cleanup.
func openNode(t *testing.T, dsn, node string) *store.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Nodes sharing a database must seal with one master key: a node with
// another key (here its own, made at its first start) is refused at Open
// with what to do, and keeps no key file; with the first node's key
// copied in it opens and reads the first node's passwords, and sees its
// changes (Version).
func TestSharedStoreNeedsTheFirstNodesKey(t *testing.T) {
	t.Setenv(KeyEnv, "")
	dsn := pgtest.Shared(t).NewDatabase(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := Open(openNode(t, dsn, "a"), filepath.Join(dirA, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(sample("sg"), "s3cret-password"); err != nil {
		t.Fatal(err)
	}

	dbB := openNode(t, dsn, "b")
	keyB := filepath.Join(dirB, "secrets.key")
	_, err = Open(dbB, keyB)
	if err == nil || !strings.Contains(err.Error(), "copy secrets.key from the data_dir of a node that already uses this database") ||
		!strings.Contains(err.Error(), "docs/cluster.md") {
		t.Fatalf("Open with another key on a shared store: %v", err)
	}
	if _, err := os.Stat(keyB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the key Open made for node b is still there (%v): it would be taken for the cluster's", err)
	}

	key, err := os.ReadFile(filepath.Join(dirA, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyB, key, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dbB, keyB)
	if err != nil {
		t.Fatalf("Open with the first node's key: %v", err)
	}
	if p, err := b.Password("sg"); err != nil || p != "s3cret-password" {
		t.Fatalf("node b reads the password as %q, %v", p, err)
	}
	before := b.Version()
	if _, err := a.Add(sample("mg"), "other-password"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for b.Version() == before {
		if time.Now().After(deadline) {
			t.Fatal("node b's Version did not move after node a added a smarthost")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
