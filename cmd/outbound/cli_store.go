package main

// `outbound store migrate`: a relay's shared state, from its bbolt file
// into the PostgreSQL store that several nodes share (docs/cluster.md).
// Unlike the other CLI commands it opens the database itself, not the
// admin API: it runs while the relay is stopped.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/config"
	"outbound/quota"
	"outbound/store"
)

// sharedBuckets are the storage owners' buckets that move to PostgreSQL:
// everything in outbound.db but the queue (messages, bodies), captured
// messages and the quota (which has its own tables).
var sharedBuckets = []string{
	"users", "operators", "api-keys",
	"smarthosts", "smarthost-keys", "dkim-keys",
	"suppressions",
	"send-api-templates",
	"webhook-endpoints", "webhook-outbox",
	"events", "events-by-message", "events-by-ref",
}

const storeMigrateHelp = `usage: outbound [-config FILE] store migrate [--force]

Copies the shared state of this relay's bbolt file (data_dir/outbound.db)
into the PostgreSQL store of the configuration's [store] (kind = "postgres",
dsn or dsn_file), then verifies that every key arrived with its value.
Stop ` + "`outbound serve`" + ` first. Running it again copies again and changes
nothing more; keys already in PostgreSQL that the file lacks are kept, but
the file's values replace the database's: so it refuses while relay nodes
run on the database (a heartbeat in the last minute) unless --force, and
always when the database's secrets are sealed under another secrets.key.

Moved: users, operators, API keys, smarthosts and their sealed secrets,
DKIM keys, suppressions, send API templates,
webhook endpoints and their outbox, the event log; and the sending
quota's counts of the last 24 hours, into the shared counts (a minute
counted on both sides keeps the greater count). The quota is why the file
is opened for writing once more at the end: opening its counts converts
older layouts and drops expired hours, as ` + "`outbound serve`" + ` does at start.
Not moved:
  the queue (messages, bodies): it stays in the node's bbolt file; run
    the node on this same data_dir, and it delivers what is queued
  captured messages: capture is node-local
  the send API's Idempotency-Key answers: each node keeps its own
Every node needs this data_dir's secrets.key (smarthost passwords, DKIM
keys and webhook secrets are sealed under it).
`

func (e *cliEnv) storeCommand(args []string) error {
	return subcommands("store", "usage: outbound store migrate", args, map[string]func([]string) error{
		"migrate": e.storeMigrate,
	})
}

func (e *cliEnv) storeMigrate(args []string) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stdout, storeMigrateHelp)
		return nil
	}
	force := len(args) == 1 && (args[0] == "--force" || args[0] == "-force")
	if len(args) > 0 && !force {
		return usagef("store migrate takes no arguments besides -config and --force, got %q", args)
	}
	cfg, err := loadConfig(e.configPath)
	if err != nil {
		return err
	}
	if cfg.Store.Kind != "postgres" {
		return fmt.Errorf("store migrate copies into PostgreSQL, and [store] kind is %q: set kind = \"postgres\" and dsn (or dsn_file) in the configuration file, then run it again", cfg.Store.Kind)
	}
	src, err := openDBReadOnly(cfg.DataDir)
	if err != nil {
		return err
	}
	dst, err := openPostgresStore(cfg)
	if err != nil {
		src.Close()
		return err
	}
	defer dst.Close()
	if err := migrateSafe(dst, src, force); err != nil {
		src.Close()
		return err
	}
	err = e.copyShared(dst, src)
	src.Close() // the quota opens it again, for writing
	if err != nil {
		return err
	}
	users, err := importQuota(cfg.DataDir, dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "quota: the last 24 hours' counts added to the shared counts (users with counts: %d)\n", users)
	fmt.Fprint(e.stdout, `not moved:
  messages, bodies: the queue stays in this node's bbolt file; run the node on this data_dir
  captured: capture is node-local
every node needs this data_dir's secrets.key: copy `+filepath.Join(cfg.DataDir, "secrets.key")+` to each (mode 0600)
`)
	return nil
}

// migrateSafe refuses a migration that would break a cluster: into a
// database whose secrets are sealed under another master key (they would
// become unreadable to everyone), or, unless force, while relay nodes run
// on it (the file's values would replace what they changed).
func migrateSafe(dst *store.Postgres, src *bolt.DB, force bool) error {
	var differ bool
	err := src.View(func(stx *bolt.Tx) error {
		sb := stx.Bucket([]byte("smarthost-keys"))
		if sb == nil {
			return nil
		}
		return dst.View(func(dtx store.Tx) error {
			db := dtx.Bucket([]byte("smarthost-keys"))
			if db == nil {
				return nil
			}
			return db.ForEach(func(k, v []byte) error {
				if sv := sb.Get(k); sv != nil && string(sv) != string(v) {
					differ = true
				}
				return nil
			})
		})
	})
	if err != nil {
		return fmt.Errorf("comparing the master keys' check values: %w", err)
	}
	if differ {
		return fmt.Errorf("the database's secrets are sealed under another secrets.key than %s's: migrating would make the smarthost passwords, DKIM keys and webhook secrets unreadable; migrate a relay into an empty database, or into one its own secrets.key sealed", filepath.Dir(src.Path()))
	}
	var running int
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dst.Pool().QueryRow(ctx, "SELECT count(*) FROM nodes WHERE seen > now() - interval '1 minute'").Scan(&running); err != nil {
		return fmt.Errorf("counting the running nodes: %w", err)
	}
	if running > 0 && !force {
		return fmt.Errorf("%d relay node(s) ran on this database in the last minute: store migrate would replace what they changed (users, passwords, suppressions) with the file's values; stop them first, or pass --force", running)
	}
	return nil
}

// copyShared copies the shared buckets of src into dst and verifies them,
// printing a line a bucket and the total.
func (e *cliEnv) copyShared(dst *store.Postgres, src *bolt.DB) error {
	fmt.Fprintf(e.stdout, "copying %s into PostgreSQL\n", src.Path())
	reports, err := store.Copy(dst, store.Bolt(src), sharedBuckets)
	printCopyReports(e.stdout, reports)
	if err != nil {
		return err
	}
	keys, buckets := 0, 0
	for _, r := range reports {
		if !r.Missing {
			keys += r.SrcKeys
			buckets++
		}
	}
	fmt.Fprintf(e.stdout, "verified: %d keys in %d buckets\n", keys, buckets)
	return nil
}

// importQuota adds the quota counts of data_dir/outbound.db to the shared
// counts in dst. It opens the file for writing (quota.Open converts older
// layouts and drops expired hours, as serve's start does); users is how
// many users had counts.
func importQuota(dataDir string, dst *store.Postgres) (users int, err error) {
	db, err := openDB(dataDir)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	local, err := quota.Open(db, nil)
	if err != nil {
		return 0, fmt.Errorf("the quota's counts in %s: %w", db.Path(), err)
	}
	shared, err := quota.OpenShared(dst.Pool(), quota.SharedOptions{})
	if err != nil {
		return 0, err
	}
	defer shared.Close()
	if err := shared.Import(local); err != nil {
		return 0, err
	}
	return len(local.Users()), nil
}

// openDBReadOnly opens data_dir/outbound.db for reading. A running relay
// holds its lock: after a short wait, say to stop it.
func openDBReadOnly(dataDir string) (*bolt.DB, error) {
	path := filepath.Join(dataDir, "outbound.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("nothing to migrate: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%s is locked: stop `outbound serve` (every process using this data_dir) first", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return db, nil
}

// openPostgresStore opens the configuration's PostgreSQL store, applying
// its schema migrations. (Interrupting the copy that follows is safe: what
// was committed is committed, and the next run copies it again.)
func openPostgresStore(cfg config.Config) (*store.Postgres, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := cfg.StoreDSN()
	if err != nil {
		return nil, err
	}
	node := cfg.NodeName()
	pg, err := store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: node, Passive: true})
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL store: %w", err)
	}
	return pg, nil
}

// printCopyReports prints a line a bucket.
func printCopyReports(w io.Writer, reports []store.CopyReport) {
	tw := newTable(w)
	for _, r := range reports {
		switch {
		case r.Missing:
			fmt.Fprintf(tw, "  %s\tnot in the file, nothing to copy\n", r.Bucket)
		case r.Verified:
			fmt.Fprintf(tw, "  %s\tcopied %d\t%d in PostgreSQL\tsequence %d\tverified\n", r.Bucket, r.Copied, r.DstKeys, r.Sequence)
		case r.Problem() != "":
			fmt.Fprintf(tw, "  %s\tcopied %d\t%d in PostgreSQL\tsequence %d\tMISMATCH: %s\n", r.Bucket, r.Copied, r.DstKeys, r.Sequence, r.Problem())
		default: // the copy stopped before verifying
			fmt.Fprintf(tw, "  %s\tcopied %d\t\t\tnot verified\n", r.Bucket, r.Copied)
		}
	}
	tw.Flush()
}
