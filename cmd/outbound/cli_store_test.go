package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/internal/pgtest"
	"outbound/internal/testutil"
	"outbound/store"
)

// migrateRig is a relay's data_dir and two configuration files for it:
// serve, on bbolt (the relay that fills it), and migrate, the same with
// [store] kind = "postgres" and dsn.
type migrateRig struct {
	dataDir        string
	serve, migrate string
}

func newMigrateRig(t *testing.T, dsn string) *migrateRig {
	t.Helper()
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(testutil.FreePort(t))
	r := &migrateRig{dataDir: filepath.Join(dir, "data")}
	// The embedded default route captures, so a submission leaves a
	// captured message (which stays) and events (which move).
	text := "allow_capture_in_production = true\n" +
		"data_dir = " + strconv.Quote(r.dataDir) + "\n" +
		"[submission]\nimplicit_tls = \"127.0.0.1:0\"\nstarttls = \"\"\n" +
		"[admin]\nlisten = " + strconv.Quote(net.JoinHostPort("127.0.0.1", port)) + "\n"
	r.serve = testutil.WriteFile(t, dir, "serve.toml", []byte(text))
	r.migrate = testutil.WriteFile(t, dir, "migrate.toml", []byte(text+
		"[store]\nkind = \"postgres\"\ndsn = "+strconv.Quote(dsn)+"\n"))
	return r
}

// startRelay serves the rig's data_dir on bbolt; the function returned
// stops it (and is safe to call again at cleanup).
func (r *migrateRig) startRelay(t *testing.T) (*server, func()) {
	t.Helper()
	cfg, err := loadConfig(r.serve)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(srv.stop) }
	t.Cleanup(stop)
	return srv, stop
}

// storeMigrate runs `outbound store migrate` on the rig's migrate config.
func (r *migrateRig) storeMigrate(t *testing.T) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run([]string{"-config", r.migrate, "store", "migrate"}, strings.NewReader(""), &out, &out)
	return out.String(), err
}

// dumpedBucket is a bucket's keys, values and sequence.
type dumpedBucket struct {
	Seq  uint64
	Keys map[string]string
}

// dumpStore reads the named buckets of db (absent ones are left out).
func dumpStore(t *testing.T, db store.DB, buckets []string) map[string]dumpedBucket {
	t.Helper()
	out := map[string]dumpedBucket{}
	if err := db.View(func(tx store.Tx) error {
		for _, name := range buckets {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			d := dumpedBucket{Seq: b.Sequence(), Keys: map[string]string{}}
			if err := b.ForEach(func(k, v []byte) error { d.Keys[string(k)] = string(v); return nil }); err != nil {
				return err
			}
			out[name] = d
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func keyCount(d map[string]dumpedBucket) int {
	n := 0
	for _, b := range d {
		n += len(b.Keys)
	}
	return n
}

// A relay's data_dir, filled by the relay itself (a user, an operator, a
// suppression, a captured submission with its events), moves to
// PostgreSQL whole: every shared bucket arrives key for key with its
// sequence, the queue and captured messages stay behind, and a second run
// changes nothing.
func TestStoreMigrate(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	r := newMigrateRig(t, dsn)
	srv, stopRelay := r.startRelay(t)
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"a long enough password\n", []string{"user", "add", "alice@example.org"}},
		{"operator password 1\n", []string{"operator", "add", "admin"}},
		{"", []string{"suppression", "add", "gone@example.net", "--user", "alice@example.org"}},
	} {
		if out, err := runCLI(t, r.serve, c.stdin, c.args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c.args, " "), err, out)
		}
	}
	submitAsAlice(t, srv, "before the migration")
	stopRelay()

	// What the file holds, read after the relay stopped.
	raw, err := bolt.Open(filepath.Join(r.dataDir, "outbound.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := dumpStore(t, store.Bolt(raw), sharedBuckets)
	raw.Close()
	for _, b := range []string{"users", "operators", "suppressions", "events"} {
		if len(want[b].Keys) == 0 {
			t.Fatalf("the relay left nothing in %s: the test fills no such bucket", b)
		}
	}

	out, err := r.storeMigrate(t)
	if err != nil {
		t.Fatalf("store migrate: %v\n%s", err, out)
	}
	t.Logf("store migrate:\n%s", out)
	for _, s := range []string{
		"users ", "events ", "verified\n",
		"verified: " + strconv.Itoa(keyCount(want)) + " keys in ",
		"captured: capture is node-local", "secrets.key",
		"quota: the last 24 hours' counts added to the shared counts (users with counts: 1)",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "MISMATCH") {
		t.Errorf("a mismatch:\n%s", out)
	}

	pg := openTestPostgres(t, r.migrate)
	got := dumpStore(t, pg, append([]string{"messages", "bodies", "captured"}, sharedBuckets...))
	if !reflect.DeepEqual(got, want) {
		for name := range got {
			if !reflect.DeepEqual(got[name], want[name]) {
				t.Errorf("bucket %s in PostgreSQL:\n got %v\nwant %v", name, got[name], want[name])
			}
		}
		t.Fatalf("PostgreSQL holds buckets %v, the file %v", keysOf(got), keysOf(want))
	}

	// alice's one recipient, counted in the shared quota.
	if n := sharedQuotaCount(t, pg, "alice@example.org"); n != 1 {
		t.Errorf("alice's shared quota count: %d, want 1", n)
	}

	// Again: the same answer, the same content.
	again, err := r.storeMigrate(t)
	if err != nil {
		t.Fatalf("second store migrate: %v\n%s", err, again)
	}
	if again != out {
		t.Errorf("second run printed\n%s\nfirst\n%s", again, out)
	}
	if got := dumpStore(t, pg, sharedBuckets); !reflect.DeepEqual(got, want) {
		t.Error("the second run changed PostgreSQL")
	}
	if n := sharedQuotaCount(t, pg, "alice@example.org"); n != 1 {
		t.Errorf("alice's shared quota count after the second run: %d, want 1", n)
	}
}

// sharedQuotaCount is what the shared quota counts for login (package
// quota's table, store/migrations).
func sharedQuotaCount(t *testing.T, pg *store.Postgres, login string) int {
	t.Helper()
	var n int
	if err := pg.Pool().QueryRow(context.Background(), "select coalesce(sum(n), 0) from quota_sends where login = $1", login).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func keysOf(m map[string]dumpedBucket) []string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	return names
}

// openTestPostgres opens the PostgreSQL store of a configuration file, as
// store migrate does, closed at cleanup.
func openTestPostgres(t *testing.T, configPath string) *store.Postgres {
	t.Helper()
	cfg, err := loadConfig(configPath)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := openPostgresStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return pg
}

// Without kind = "postgres" there is nowhere to migrate to: the error
// says what to set.
func TestStoreMigrateNeedsPostgres(t *testing.T) {
	dir := t.TempDir()
	config := testutil.WriteFile(t, dir, "outbound.toml", []byte("data_dir = "+strconv.Quote(filepath.Join(dir, "data"))+"\n"))
	out, err := runCLI(t, config, "", "store", "migrate")
	if err == nil || !strings.Contains(err.Error(), `set kind = "postgres" and dsn (or dsn_file)`) {
		t.Errorf("err = %v\n%s", err, out)
	}
}

// While the relay runs, its file is locked: store migrate says to stop
// it, after a short wait, before it reaches for PostgreSQL (the DSN here
// answers nothing).
func TestStoreMigrateWhileServing(t *testing.T) {
	r := newMigrateRig(t, "postgres://outbound@127.0.0.1:1/none?sslmode=disable")
	r.startRelay(t)
	out, err := r.storeMigrate(t)
	if err == nil || !strings.Contains(err.Error(), "is locked: stop `outbound serve`") {
		t.Errorf("err = %v\n%s", err, out)
	}
}

// Its help says what is not moved, and about secrets.key.
func TestStoreMigrateHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"store", "migrate", "--help"}, strings.NewReader(""), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Not moved:\n  the queue (messages, bodies)", "captured messages: capture is node-local", "quota's counts", "secrets.key"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help lacks %q:\n%s", s, out.String())
		}
	}
}

// Migrating into a database that nodes run on would replace what they
// changed with the file's values: refused while one has a heartbeat in
// the last minute, unless --force; into secrets sealed under another
// secrets.key, refused always.
func TestStoreMigrateRefusesALiveOrForeignDatabase(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	r := newMigrateRig(t, dsn)
	_, stopRelay := r.startRelay(t)
	if out, err := runCLI(t, r.serve, "a long enough password\n", "user", "add", "alice@example.org"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	stopRelay()
	if out, err := r.storeMigrate(t); err != nil {
		t.Fatalf("first migration: %v\n%s", err, out)
	}

	pg := openTestPostgres(t, r.migrate)
	ctx := context.Background()
	if _, err := pg.Pool().Exec(ctx, `INSERT INTO nodes (name, started, seen) VALUES ('node-b', now(), now())`); err != nil {
		t.Fatal(err)
	}
	out, err := r.storeMigrate(t)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("migration while a node runs: err %v, want a refusal naming --force\n%s", err, out)
	}
	var force bytes.Buffer
	if err := run([]string{"-config", r.migrate, "store", "migrate", "--force"}, strings.NewReader(""), &force, &force); err != nil {
		t.Fatalf("--force: %v\n%s", err, force.String())
	}

	// Another relay's data_dir, with its own secrets.key.
	other := newMigrateRig(t, dsn)
	_, stopOther := other.startRelay(t)
	if out, err := runCLI(t, other.serve, "another long password\n", "user", "add", "bob@example.org"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	stopOther()
	var foreign bytes.Buffer
	err = run([]string{"-config", other.migrate, "store", "migrate", "--force"}, strings.NewReader(""), &foreign, &foreign)
	if err == nil || !strings.Contains(err.Error(), "secrets.key") {
		t.Fatalf("migration of another secrets.key's relay: err %v, want a refusal naming secrets.key\n%s", err, foreign.String())
	}
}
