package smarthost

import (
	"errors"
	"path/filepath"
	"testing"

	"outbound/store"
)

// Update and SetWebhookSecrets share one read-change-write (Store.edit):
// a committed change moves Version, a refused one neither writes nor
// moves it, and an unknown name is ErrNotFound.
func TestEditsMoveVersionOnlyWhenTheyCommit(t *testing.T) {
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sample("sg"), secret); err != nil {
		t.Fatal(err)
	}
	v := s.Version()
	if err := s.Update("sg", nil, func(h *Smarthost) error { h.Port = 2525; return nil }); err != nil {
		t.Fatal(err)
	}
	if s.Version() == v {
		t.Error("Version did not move on Update")
	}
	v = s.Version()
	if err := s.SetWebhookSecrets("sg", map[string]string{"generic_secret": "g-secret-abcdefgh"}); err != nil {
		t.Fatal(err)
	}
	if s.Version() == v {
		t.Error("Version did not move on SetWebhookSecrets")
	}
	v = s.Version()
	err = s.Update("sg", nil, func(h *Smarthost) error { h.Port = 25; h.TLS = "none"; return nil })
	if err == nil {
		t.Fatal("tls none on a remote host accepted")
	}
	if h, err := s.Get("sg"); err != nil || h.Port != 2525 || h.TLS != "starttls" {
		t.Errorf("after a refused Update: %+v, %v; want port 2525 over starttls", h, err)
	}
	if s.Version() != v {
		t.Error("Version moved on a refused Update")
	}
	if err := s.SetWebhookSecrets("nope", map[string]string{"generic_secret": "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetWebhookSecrets of an unknown smarthost: %v, want ErrNotFound", err)
	}
	if s.Version() != v {
		t.Error("Version moved on a refused SetWebhookSecrets")
	}
}
