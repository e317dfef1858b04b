package auth

import (
	"errors"
	"strings"
	"testing"

	"outbound/internal/testutil"
	"outbound/quota"
	"outbound/store"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(store.Bolt(testutil.OpenDB(t)))
	if err != nil {
		t.Fatal(err)
	}
	s.SetHashCost(4)
	return s
}

func TestMaySendAs(t *testing.T) {
	u := &User{Name: "alice@example.com", AllowFrom: []string{"support@example.org", "@example.net", "example.com.au"}}
	for addr, want := range map[string]bool{
		"alice@example.com":      true,
		"ALICE@Example.COM":      true,
		"support@example.org":    true,
		"sales@example.org":      false,
		"anyone@example.net":     true,
		"x@example.com.au":       true,
		"bob@example.com":        false,
		"alice@example.com.evil": false,
		"":                       false,
		"@example.net":           false,
	} {
		if got := u.MaySendAs(addr); got != want {
			t.Errorf("MaySendAs(%q) = %v, want %v", addr, got, want)
		}
	}
	key := &User{Name: "apikey"}
	if key.MaySendAs("apikey@example.com") {
		t.Error("a non-address login may send as nothing by itself")
	}
}

func TestPasswordsAreStoredHashed(t *testing.T) {
	s := newStore(t)
	if _, err := s.Add("alice@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	u, _ := s.Get("alice@example.com")
	if string(u.PasswordHash) == "correct horse" || len(u.PasswordHash) < 50 {
		t.Fatalf("password not hashed: %q", u.PasswordHash)
	}
}

func TestVerify(t *testing.T) {
	s := newStore(t)
	s.Add("alice@example.com", "correct horse", nil)
	if _, err := s.Verify("alice@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	// Cached the second time, still correct.
	if _, err := s.Verify("alice@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"alice@example.com", "wrong horse"}, {"nobody@example.com", "correct horse"}, {"alice@example.com", ""}} {
		if _, err := s.Verify(tc[0], tc[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(%q, %q) = %v, want ErrBadCredentials", tc[0], tc[1], err)
		}
	}
}

// A cached verification must not outlive a password change.
func TestPasswordChangeDropsCachedLogin(t *testing.T) {
	s := newStore(t)
	s.Add("alice@example.com", "old password", nil)
	if _, err := s.Verify("alice@example.com", "old password"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword("alice@example.com", "new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("alice@example.com", "old password"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password still accepted after a change: %v", err)
	}
	if _, err := s.Verify("alice@example.com", "new password"); err != nil {
		t.Fatal(err)
	}
}

func TestDeletedUserCannotLogIn(t *testing.T) {
	s := newStore(t)
	s.Add("alice@example.com", "correct horse", nil)
	s.Verify("alice@example.com", "correct horse")
	if err := s.Delete("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("alice@example.com", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("deleted user logged in: %v", err)
	}
}

func TestBadInputRefused(t *testing.T) {
	s := newStore(t)
	s.Add("alice@example.com", "correct horse", nil)
	for _, tc := range []struct {
		name, pass string
		allow      []string
	}{
		{"alice@example.com", "another one", nil}, // exists
		{"bob smith", "correct horse", nil},
		{"bob@example.com", "short", nil},
		{"bob@example.com", "correct horse", []string{"not a domain"}},
		{"bob@example.com", "correct horse", []string{"localhost"}},
		{"", "correct horse", nil},
	} {
		if _, err := s.Add(tc.name, tc.pass, tc.allow); err == nil {
			t.Errorf("Add(%q, %q, %v) accepted", tc.name, tc.pass, tc.allow)
		}
	}
}

func TestLoginMechanism(t *testing.T) {
	var gotUser, gotPass string
	srv := NewLoginServer(func(u, p string) error { gotUser, gotPass = u, p; return nil })
	ch, done, err := srv.Next(nil)
	if string(ch) != "Username:" || done || err != nil {
		t.Fatalf("first challenge %q %v %v", ch, done, err)
	}
	ch, done, _ = srv.Next([]byte("alice@example.com"))
	if string(ch) != "Password:" || done {
		t.Fatalf("second challenge %q", ch)
	}
	if _, done, err = srv.Next([]byte("secret")); !done || err != nil || gotUser != "alice@example.com" || gotPass != "secret" {
		t.Fatalf("final step: %v %v %q %q", done, err, gotUser, gotPass)
	}
	// With the user name as initial response.
	srv = NewLoginServer(func(u, p string) error { gotUser = u; return errors.New("no") })
	if ch, _, _ := srv.Next([]byte("bob")); string(ch) != "Password:" {
		t.Fatalf("initial response: challenge %q", ch)
	}
	if _, _, err := srv.Next([]byte("x")); err == nil || gotUser != "bob" {
		t.Fatal("authenticator error not returned")
	}
}

// A user's limits override keeps its stored form: records written before
// it became a quota.Limits read the same, and are written the same.
func TestLimitsOverrideKeepsItsStoredForm(t *testing.T) {
	s := newStore(t)
	stored := `{"name":"alice@example.com","password_hash":null,"limits":{"per_hour":5,"per_day":50},"created":"2026-03-02T10:00:00Z"}`
	err := s.db.Update(func(tx store.Tx) error {
		return tx.Bucket(usersBucket).Put([]byte("alice@example.com"), []byte(stored))
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Get("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.Limits == nil || *u.Limits != (quota.Limits{PerHour: 5, PerDay: 50}) {
		t.Fatalf("limits read as %+v, want 5/50", u.Limits)
	}
	if err := s.Update("alice@example.com", func(u *User) error { u.Limits.PerDay = 60; return nil }); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	s.db.View(func(tx store.Tx) error {
		raw = append(raw, tx.Bucket(usersBucket).Get([]byte("alice@example.com"))...)
		return nil
	})
	if !strings.Contains(string(raw), `"limits":{"per_hour":5,"per_day":60}`) {
		t.Fatalf("stored as %s", raw)
	}
}
