package smarthost

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

const secret = "SG.very-secret-api-key-xyz789"

func openTestDB(t *testing.T) (*bolt.DB, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "outbound.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

func sample(name string) Smarthost {
	return Smarthost{Name: name, Host: "smtp.sendgrid.net", Port: 587, TLS: "starttls", Username: "apikey", Preset: "sendgrid"}
}

func TestPasswordRoundTrip(t *testing.T) {
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sample("sg"), secret); err != nil {
		t.Fatal(err)
	}
	got, err := s.Password("sg")
	if err != nil || got != secret {
		t.Fatalf("Password = %q, %v; want the stored secret", got, err)
	}
	h, _ := s.Get("sg")
	if m := s.MaskedPassword(h); m != "****xyz789" {
		t.Fatalf("masked = %q", m)
	}
	fi, err := os.Stat(filepath.Join(dir, "secrets.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
}

func TestDatabaseFileNeverHoldsThePassword(t *testing.T) {
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sample("sg"), secret); err != nil {
		t.Fatal(err)
	}
	other := "another-password-0123456789"
	if err := s.Update("sg", &other, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateKey(NewKey()); err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	db.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{secret, other, "xyz789", "0123456789"} {
		if bytes.Contains(data, []byte(p)) {
			t.Fatalf("the bbolt file contains %q in the clear", p)
		}
	}
	if !bytes.Contains(data, []byte("smtp.sendgrid.net")) {
		t.Fatal("scan is broken: the host name should be in the file")
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "****",
		"short":               "****",
		"elevenchars":         "****",
		"twelvechars!":        "****chars!",
		"key-abcdef-xyz789":   "****xyz789",
		"ключ-длинный-секрет": "****секрет",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRotateKeyOldKeyNoLongerOpens(t *testing.T) {
	db, dir := openTestDB(t)
	keyPath := filepath.Join(dir, "secrets.key")
	s, err := Open(store.Bolt(db), keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sample("sg"), secret); err != nil {
		t.Fatal(err)
	}
	oldKey, _ := os.ReadFile(keyPath)
	newKey := NewKey()
	if err := s.RotateKey(newKey); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Password("sg"); err != nil || got != secret {
		t.Fatalf("after rotation: %q, %v", got, err)
	}
	onDisk, _ := os.ReadFile(keyPath)
	if strings.TrimSpace(string(onDisk)) != hex.EncodeToString(newKey) {
		t.Fatal("key file does not hold the new key")
	}
	if _, err := os.Stat(keyPath + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("secrets.key.new left behind: %v", err)
	}
	// The old key opens nothing any more.
	t.Setenv(KeyEnv, strings.TrimSpace(string(oldKey)))
	if _, err := Open(store.Bolt(db), keyPath); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("Open with the old key: %v, want a refusal", err)
	}
	// The new one does, from the environment too.
	t.Setenv(KeyEnv, hex.EncodeToString(newKey))
	s2, err := Open(store.Bolt(db), keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Password("sg"); err != nil || got != secret {
		t.Fatalf("reopened with the new key: %q, %v", got, err)
	}
	if err := s2.RotateKey(NewKey()); err == nil || !strings.Contains(err.Error(), KeyEnv) {
		t.Fatalf("rotating an environment key: %v, want a refusal", err)
	}
}

// A crash after the rotation's commit but before the key file's rename
// leaves the new key in secrets.key.new: Open uses it and finishes.
func TestOpenFinishesInterruptedRotation(t *testing.T) {
	db, dir := openTestDB(t)
	keyPath := filepath.Join(dir, "secrets.key")
	s, err := Open(store.Bolt(db), keyPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Add(sample("sg"), secret)
	oldKey, _ := os.ReadFile(keyPath)
	newKey := NewKey()
	if err := s.RotateKey(newKey); err != nil {
		t.Fatal(err)
	}
	// Simulate the crash: new key only in .new, the old one in place.
	os.WriteFile(keyPath+".new", []byte(hex.EncodeToString(newKey)+"\n"), 0o600)
	os.WriteFile(keyPath, oldKey, 0o600)
	s2, err := Open(store.Bolt(db), keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Password("sg"); err != nil || got != secret {
		t.Fatalf("after recovery: %q, %v", got, err)
	}
	onDisk, _ := os.ReadFile(keyPath)
	if strings.TrimSpace(string(onDisk)) != hex.EncodeToString(newKey) {
		t.Fatal("recovery did not install the new key")
	}
	// A crash before the commit: .new holds an unused key; Open drops it.
	os.WriteFile(keyPath+".new", []byte(hex.EncodeToString(NewKey())+"\n"), 0o600)
	if _, err := Open(store.Bolt(db), keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keyPath + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("unused secrets.key.new not removed")
	}
}

func TestWrongKeyGivesClearError(t *testing.T) {
	db, dir := openTestDB(t)
	keyPath := filepath.Join(dir, "secrets.key")
	s, err := Open(store.Bolt(db), keyPath)
	if err != nil {
		t.Fatal(err)
	}
	s.Add(sample("sg"), secret)
	// The key file is lost and replaced: the store refuses to start
	// rather than fail at the first delivery.
	os.Remove(keyPath)
	_, err = Open(store.Bolt(db), keyPath+"-other")
	if err == nil || !strings.Contains(err.Error(), "does not open the smarthost passwords") {
		t.Fatalf("Open with another key: %v", err)
	}
	// A record sealed under another key (or moved to another name) says so.
	err = db.Update(func(tx *bolt.Tx) error {
		b := store.BoltTx(tx).Bucket(bucket)
		h, _ := get(b, "sg")
		h.Name = "copy"
		return put(b, h)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Password("copy"); err == nil || !strings.Contains(err.Error(), "cannot decrypt the password of smarthost copy") {
		t.Fatalf("moved record: %v", err)
	}
	t.Setenv(KeyEnv, "not a key")
	if _, err := Open(store.Bolt(db), keyPath); err == nil || !strings.Contains(err.Error(), "64 hex digits or base64") {
		t.Fatalf("bad env key: %v", err)
	}
}

func TestAddValidatesAndDeleteRefusesWhileInUse(t *testing.T) {
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	bad := sample("x")
	bad.TLS = "none"
	if _, err := s.Add(bad, ""); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("tls none on a remote host: %v", err)
	}
	if _, err := s.Add(sample("default"), ""); err == nil {
		t.Fatal(`"default" accepted as a smarthost name`)
	}
	if _, err := s.Add(sample("sg"), secret); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sample("sg"), secret); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	fb := sample("backup")
	fb.Fallback = "nope"
	if _, err := s.Add(fb, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown fallback: %v", err)
	}
	v := s.Version()
	err = s.Delete("sg", func(string) ([]string, error) { return []string{"app@example.com"}, nil })
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "app@example.com") {
		t.Fatalf("delete in use: %v", err)
	}
	if err := s.Delete("sg", func(string) ([]string, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if s.Version() == v {
		t.Fatal("Version did not change on delete")
	}
	if _, err := s.Get("sg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// Passwords sealed while a rotation runs are sealed under the key that
// ends up in the key file: every one opens afterwards.
func TestRotateKeyConcurrentWithAdds(t *testing.T) {
	db, dir := openTestDB(t)
	keyPath := filepath.Join(dir, "secrets.key")
	s, err := Open(store.Bolt(db), keyPath)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for i := 0; i < 5; i++ {
			if err := s.RotateKey(NewKey()); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < 20; i++ {
		if _, err := s.Add(sample("sg"+strconv.Itoa(i)), secret); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s2, err := Open(store.Bolt(db), keyPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if p, err := s2.Password("sg" + strconv.Itoa(i)); err != nil || p != secret {
			t.Fatalf("sg%d: %q, %v", i, p, err)
		}
	}
}

// A user's own SMTP server carries its owner's credentials: no other
// smarthost may name it as fallback, on add or on update, while an
// operator's shared smarthost may be one.
func TestOwnedSmarthostIsNoFallback(t *testing.T) {
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	own := sample("own-bob")
	own.Owner, own.PublicOnly = "bob@example.com", true
	if _, err := s.Add(own, secret); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Get("own-bob"); h.Owner != "bob@example.com" || !h.PublicOnly {
		t.Fatalf("owner not stored: %+v", h)
	}
	if _, err := s.Add(sample("shared"), secret); err != nil {
		t.Fatal(err)
	}
	fb := sample("main")
	fb.Fallback = "own-bob"
	if _, err := s.Add(fb, secret); err == nil || !strings.Contains(err.Error(), `fallback "own-bob" is the own SMTP server of user bob@example.com`) {
		t.Fatalf("an owned fallback on add: %v", err)
	}
	fb.Fallback = "shared"
	if _, err := s.Add(fb, secret); err != nil {
		t.Fatal(err)
	}
	err = s.Update("main", nil, func(h *Smarthost) error { h.Fallback = "own-bob"; return nil })
	if err == nil || !strings.Contains(err.Error(), "own SMTP server") {
		t.Fatalf("an owned fallback on update: %v", err)
	}
	if h, _ := s.Get("main"); h.Fallback != "shared" {
		t.Fatalf("refused update changed the fallback to %q", h.Fallback)
	}
}
