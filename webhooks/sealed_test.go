package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/smarthost"
	"outbound/store"
)

// fileHolds says whether the rig's bbolt file, read as raw bytes, holds s.
func (r *rig) fileHolds(t *testing.T, s string) bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(r.dir, "t.db"))
	must(t, err)
	return bytes.Contains(raw, []byte(s))
}

// record returns the JSON an endpoint is stored as.
func (r *rig) record(t *testing.T, id string) map[string]json.RawMessage {
	t.Helper()
	var rec map[string]json.RawMessage
	must(t, r.db.View(func(tx *bolt.Tx) error {
		return json.Unmarshal(tx.Bucket(endpointsBucket).Get([]byte(id)), &rec)
	}))
	return rec
}

// restart closes the rig's database and opens the stores again on the
// same file and key.
func (r *rig) restart(t *testing.T) *rig {
	t.Helper()
	must(t, r.db.Close())
	return openRig(t, r.dir, r.wh.policy)
}

// secretKey is the part of a secret that keys the HMAC: neither it nor
// the whole secret may be in the file.
func secretKey(secret string) string { return strings.TrimPrefix(secret, secretPrefix) }

func TestSecretIsNotInTheFileInClear(t *testing.T) {
	r := newRig(t, Policy{})
	ep, secret, err := r.wh.Register(context.Background(), "alice", "https://93.184.216.34/hooks", nil)
	must(t, err)
	// The scan sees what is stored: the URL is there in clear.
	if !r.fileHolds(t, "https://93.184.216.34/hooks") {
		t.Fatal("the endpoint's URL is not in the file: the scan reads the wrong file")
	}
	if r.fileHolds(t, secretKey(secret)) {
		t.Fatal("the signing secret is in the bbolt file in clear")
	}
	rec := r.record(t, ep.ID)
	if _, ok := rec["secret"]; ok {
		t.Errorf("the record has a clear secret field: %s", rec["secret"])
	}
	if len(rec["sealed_secret"]) < 10 {
		t.Errorf("the record has no sealed secret: %v", rec)
	}
	// What the store answers carries the hint only.
	list, err := r.wh.List("")
	must(t, err)
	got, err := json.Marshal(list)
	must(t, err)
	if strings.Contains(string(got), secretKey(secret)) || !strings.Contains(string(got), ep.SecretHint) {
		t.Errorf("List answers %s", got)
	}
	if opened, err := r.wh.openSecret(ep.ID); err != nil || opened != secret {
		t.Errorf("openSecret = %q, %v; want the secret Register returned", opened, err)
	}
}

// The worker signs with the secret Register returned before a restart, after
// a key rotation in the running relay, and after a restart on the rotated
// key; no copy of it reaches the file in clear.
func TestSigningVerifiesAfterRestartAndKeyRotation(t *testing.T) {
	rc := &receiver{t: t}
	srv, pool := tlsServer(t, rc)
	r := newRig(t, Policy{AllowPrivate: true})
	_, secret, err := r.wh.Register(context.Background(), "alice", srv.URL+"/hooks", nil)
	must(t, err)
	rc.secret.Store(secret)
	taken := func(n int) func() bool {
		return func() bool { _, tk, _ := rc.snapshot(); return len(tk) >= n }
	}
	relay := func(r *rig, rcpt string) {
		t.Helper()
		must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.Relayed, Message: "m1", User: "alice", Recipient: rcpt}))
	}

	r = r.restart(t)
	stop := r.run(t, Options{RootCAs: pool, Backoff: fast})
	relay(r, "after-restart@example.com")
	waitFor(t, "the delivery after the restart", taken(1))

	before, err := os.ReadFile(filepath.Join(r.dir, "secrets.key"))
	must(t, err)
	must(t, r.hosts.RotateKey(smarthost.NewKey()))
	after, err := os.ReadFile(filepath.Join(r.dir, "secrets.key"))
	must(t, err)
	if bytes.Equal(before, after) {
		t.Fatal("the key file did not change: no rotation happened")
	}
	relay(r, "after-rotation@example.com")
	waitFor(t, "the delivery after the key rotation", taken(2))

	stop()
	r = r.restart(t)
	r.run(t, Options{RootCAs: pool, Backoff: fast})
	relay(r, "after-rotation-and-restart@example.com")
	waitFor(t, "the delivery after the rotation and a restart", taken(3))

	if seen, _, _ := rc.snapshot(); len(seen) != 3 {
		t.Errorf("%d requests, want 3 (one failed to sign or verify?)", len(seen))
	}
	if r.fileHolds(t, secretKey(secret)) {
		t.Error("the signing secret is in the bbolt file in clear")
	}
}

// An endpoint as the versions before sealing stored it: the secret in
// clear, in field "secret".
const clearRecord = `{"id":"ep_00112233445566aa","user":"alice","url":%q,"secret_hint":"whsec_c2Vj…",` +
	`"created":"2026-01-02T03:04:05Z","pending":0,"secret":%q}`

func TestClearSecretsOfAnOlderDataDirectoryAreSealedAtOpen(t *testing.T) {
	rc := &receiver{t: t}
	srv, pool := tlsServer(t, rc)
	dir := t.TempDir()
	secret := NewSecret()
	db, err := bolt.Open(filepath.Join(dir, "t.db"), 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(endpointsBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte("ep_00112233445566aa"), fmt.Appendf(nil, clearRecord, srv.URL+"/hooks", secret))
	}))
	must(t, db.Close())

	r := openRig(t, dir, Policy{AllowPrivate: true})
	rec := r.record(t, "ep_00112233445566aa")
	if _, ok := rec["secret"]; ok {
		t.Fatalf("the clear secret is still in the record: %s", rec["secret"])
	}
	if len(rec["sealed_secret"]) < 10 || bytes.Contains(rec["sealed_secret"], []byte(secretKey(secret))) {
		t.Fatalf("the record's sealed secret: %s", rec["sealed_secret"])
	}
	if string(rec["url"]) != `"`+srv.URL+`/hooks"` || string(rec["created"]) != `"2026-01-02T03:04:05Z"` {
		t.Errorf("the migration changed the endpoint: %v", rec)
	}

	// It keeps signing with the secret its app has, across a rotation and
	// a second opening (nothing left to migrate).
	rc.secret.Store(secret)
	must(t, r.hosts.RotateKey(smarthost.NewKey()))
	r = r.restart(t)
	r.run(t, Options{RootCAs: pool, Backoff: fast})
	must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.Relayed, Message: "m1", User: "alice", Recipient: "bob@example.com"}))
	waitFor(t, "the delivery signed with the migrated secret", func() bool { _, tk, _ := rc.snapshot(); return len(tk) == 1 })
}

// A sealed secret copied onto another endpoint's record does not open
// there: the associated data names the endpoint. The error names the
// endpoint, never the secret.
func TestSealedSecretOpensOnlyForItsEndpoint(t *testing.T) {
	r := newRig(t, Policy{})
	a, secretA, err := r.wh.Register(context.Background(), "alice", "https://93.184.216.34/a", nil)
	must(t, err)
	b, _, err := r.wh.Register(context.Background(), "bob", "https://93.184.216.34/b", nil)
	must(t, err)
	must(t, r.db.Update(func(tx *bolt.Tx) error {
		sa, err := getTx(store.BoltTx(tx), a.ID)
		if err != nil {
			return err
		}
		sb, err := getTx(store.BoltTx(tx), b.ID)
		if err != nil {
			return err
		}
		sb.SealedSecret = sa.SealedSecret
		return putTx(store.BoltTx(tx), sb)
	}))
	_, err = r.wh.openSecret(b.ID)
	if err == nil {
		t.Fatal("alice's sealed secret opens as bob's endpoint's")
	}
	if !strings.Contains(err.Error(), b.ID) || strings.Contains(err.Error(), secretKey(secretA)) {
		t.Errorf("error: %v", err)
	}
	if got, err := r.wh.openSecret(a.ID); err != nil || got != secretA {
		t.Errorf("alice's own: %q, %v", got, err)
	}
}
