package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, dsn string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterKeepsDataAcrossStopAndKill: what was committed is there after
// a clean stop and after a crash of the postmaster, on the same DSN.
func TestClusterKeepsDataAcrossStopAndKill(t *testing.T) {
	s := Start(t)
	dsn := s.NewDatabase(t)
	execSQL(t, dsn, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	execSQL(t, dsn, "INSERT INTO t VALUES (2)")

	s.Kill()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dsn); n != 2 {
		t.Fatalf("rows after kill and start: %d, want 2", n)
	}
}

// TestSharedDatabasesAreSeparate: two tests' databases in the one shared
// cluster do not see each other's tables.
func TestSharedDatabasesAreSeparate(t *testing.T) {
	s := Shared(t)
	if Shared(t) != s {
		t.Fatal("Shared returned two clusters")
	}
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatal("NewDatabase returned one DSN twice")
	}
	execSQL(t, a, "CREATE TABLE t (n int)")
	execSQL(t, b, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
	if n := count(t, a); n != 0 {
		t.Fatalf("database a has %d rows of b's", n)
	}
}
