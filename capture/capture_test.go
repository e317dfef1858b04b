package capture

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

func openStore(t *testing.T) (*Bolt, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := OpenBolt(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

const sample = "From: a@example.com\r\nTo: b@example.org\r\nSubject: =?utf-8?q?Caf=C3=A9?= report\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
	"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n" +
	"--b2\r\nContent-Type: text/plain\r\n\r\nhello text\r\n" +
	"--b2\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>hello=20<b>html</b></p>\r\n--b2--\r\n" +
	"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n"

func TestStorePutListGetDeleteClear(t *testing.T) {
	s, _ := openStore(t)
	now := time.Now()
	if err := s.Put(&Message{ID: "A1", User: "u", From: "a@example.com", To: []string{"b@example.org"}, Captured: now, Body: []byte(sample)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(&Message{ID: "A2", To: []string{"c@example.net"}, Captured: now.Add(time.Second), Body: []byte("Subject: other\r\n\r\nx")}); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(Filter{})
	if err != nil || len(all) != 2 || all[0].ID != "A2" || all[0].Body != nil {
		t.Fatalf("List = %+v, %v; want A2 first, without bodies", all, err)
	}
	got, _ := s.List(Filter{To: "B@EXAMPLE", Subject: "café"})
	if len(got) != 1 || got[0].ID != "A1" || got[0].Subject != "Café report" {
		t.Fatalf("filtered List = %+v", got)
	}
	if got, _ := s.List(Filter{To: "b@example.org", Subject: "other"}); len(got) != 0 {
		t.Fatalf("filters must both match, got %+v", got)
	}
	m, err := s.Get("A1")
	if err != nil || string(m.Body) != sample {
		t.Fatalf("Get = %v; body not byte-identical", err)
	}
	if err := s.Delete("A1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("A1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if n, err := s.Clear(); err != nil || n != 1 {
		t.Fatalf("Clear = %d, %v", n, err)
	}
	if all, _ := s.List(Filter{}); len(all) != 0 {
		t.Fatalf("after Clear: %+v", all)
	}
}

func TestRetentionRedactsCapturedContent(t *testing.T) {
	s, db := openStore(t)
	s.Put(&Message{ID: "R1", Captured: time.Now(), Body: []byte(sample)})
	at := time.Now()
	if err := db.Update(func(tx *bolt.Tx) error { return s.Redacted(tx, "R1", "u", at) }); err != nil {
		t.Fatal(err)
	}
	m, err := s.Get("R1")
	if err != nil || m.Body != nil || m.Redacted.IsZero() || m.Size != len(sample) {
		t.Fatalf("after redaction: %+v, %v; want no body, Redacted set, size kept", m, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return s.Removed(tx, "R1") }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("R1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after removal: %v", err)
	}
}

func TestParseTextHTMLAttachments(t *testing.T) {
	p := Parse([]byte(sample))
	if p.Text != "hello text" || p.HTML != "<p>hello <b>html</b></p>" {
		t.Fatalf("text %q html %q", p.Text, p.HTML)
	}
	if len(p.Attachments) != 1 || p.Attachments[0].Filename != "r.pdf" || p.Attachments[0].Size != 5 {
		t.Fatalf("attachments %+v", p.Attachments)
	}
}
