package smarthost

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"outbound/store"
)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	db, dir := openTestDB(t)
	s, err := Open(store.Bolt(db), filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A capture smarthost's kind is stored and read back; one added without a
// kind is of kind smtp.
func TestKindRoundTrips(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.Add(Smarthost{Name: "staging", Kind: KindCapture}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(sample("sg"), secret); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"staging": KindCapture, "sg": KindSMTP} {
		h, err := s.Get(name)
		if err != nil || h.Kind != want || h.Captures() != (want == KindCapture) {
			t.Fatalf("Get(%s) = %+v, %v; want kind %s", name, h, err, want)
		}
	}
	list, err := s.List()
	if err != nil || len(list) != 2 || list[1].Kind != KindCapture || list[0].Kind != KindSMTP {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

// Records stored before smarthosts had a kind (no "kind" in their JSON)
// read as smtp, through Get and List alike.
func TestRecordWithoutKindReadsAsSMTP(t *testing.T) {
	s := openTestStore(t)
	old := `{"name":"legacy","host":"smtp.example.com","port":587,"tls":"starttls","created":"2025-01-02T03:04:05Z"}`
	err := s.db.Update(func(tx store.Tx) error { return tx.Bucket(bucket).Put([]byte("legacy"), []byte(old)) })
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Get("legacy")
	if err != nil || h.Kind != KindSMTP || h.Captures() || h.Host != "smtp.example.com" {
		t.Fatalf("Get = %+v, %v; want kind smtp", h, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Kind != KindSMTP {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// Updated, it is stored with its kind.
	if err := s.Update("legacy", nil, func(h *Smarthost) error { h.Port = 2525; return nil }); err != nil {
		t.Fatal(err)
	}
	s.db.View(func(tx store.Tx) error {
		if v := tx.Bucket(bucket).Get([]byte("legacy")); !strings.Contains(string(v), `"kind":"smtp"`) {
			t.Errorf("stored after update: %s", v)
		}
		return nil
	})
}

// A capture smarthost takes none of SMTP's settings, and the error names
// the ones given; an unknown kind is refused by name.
func TestCaptureKindRefusesSMTPSettings(t *testing.T) {
	s := openTestStore(t)
	h := sample("staging")
	h.Kind = KindCapture
	_, err := s.Add(h, "")
	if err == nil || !strings.Contains(err.Error(), "takes no preset, host, port, tls, username") {
		t.Fatalf("capture with SMTP settings: %v", err)
	}
	if _, err := s.Add(Smarthost{Name: "staging", Kind: KindCapture}, "pw"); err == nil || !strings.Contains(err.Error(), "takes no password") {
		t.Fatalf("capture with a password: %v", err)
	}
	if _, err := s.Add(Smarthost{Name: "staging", Kind: "mirror"}, ""); err == nil || !strings.Contains(err.Error(), `kind "mirror"`) {
		t.Fatalf("unknown kind: %v", err)
	}
	if _, err := s.Add(Smarthost{Name: "own-bob", Kind: KindCapture, Owner: "bob"}, ""); err == nil || !strings.Contains(err.Error(), "own SMTP server") {
		t.Fatalf("owned capture: %v", err)
	}
	if _, err := s.Get("staging"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused smarthost was stored: %v", err)
	}
}

// Made of kind capture, a smarthost loses its sealed password with its SMTP
// settings; it cannot be, or become, another smarthost's fallback.
func TestCaptureKindUpdateAndFallbacks(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.Add(sample("sg"), secret); err != nil {
		t.Fatal(err)
	}
	toCapture := func(h *Smarthost) error { h.MakeCapture(); return nil }
	if err := s.Update("sg", nil, toCapture); err != nil {
		t.Fatal(err)
	}
	h, err := s.Get("sg")
	if err != nil || !h.Captures() || len(h.SealedPassword) != 0 {
		t.Fatalf("after the change: %+v, %v; want capture without a password", h, err)
	}
	if p, err := s.Password("sg"); err != nil || p != "" {
		t.Fatalf("Password = %q, %v", p, err)
	}
	pw := "pw"
	if err := s.Update("sg", &pw, nil); err == nil || !strings.Contains(err.Error(), "takes no password") {
		t.Fatalf("password for capture: %v", err)
	}

	// Capture as a fallback: refused at add and at update.
	b := sample("b")
	b.Fallback = "sg"
	if _, err := s.Add(b, ""); err == nil || !strings.Contains(err.Error(), `fallback "sg" is of kind capture`) {
		t.Fatalf("capture as fallback: %v", err)
	}
	if _, err := s.Add(sample("mg"), ""); err != nil {
		t.Fatal(err)
	}
	b.Fallback = "mg"
	if _, err := s.Add(b, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("mg", nil, toCapture); err == nil || !strings.Contains(err.Error(), "is the fallback of smarthost b") {
		t.Fatalf("a fallback made capture: %v", err)
	}
	if h, _ := s.Get("mg"); h.Captures() {
		t.Fatal("the refused change was stored")
	}
}
