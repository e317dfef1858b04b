package admin_test

import (
	"net/http"
	"testing"
	"time"

	"outbound/admin"
	"outbound/capture"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/store"
)

// An app's test suite finds its message through GET /api/capture with
// to= and subject=, reads it byte for byte with its parts, and the
// operator deletes one or clears them all.
func TestCaptureEndpoints(t *testing.T) {
	store, err := capture.OpenBolt(store.Bolt(testutil.OpenDB(t)))
	if err != nil {
		t.Fatal(err)
	}
	r := admintest.NewWith(t, func(o *admin.Options) { o.Capture = store })
	raw := "From: a@example.com\r\nTo: b@example.org\r\nSubject: Welcome\r\n\r\nhi\r\n"
	store.Put(&capture.Message{ID: "C1", From: "a@example.com", To: []string{"b@example.org"}, Captured: time.Now(), Body: []byte(raw)})
	store.Put(&capture.Message{ID: "C2", To: []string{"c@example.org"}, Captured: time.Now(), Body: []byte("Subject: Other\r\n\r\n")})

	got, err := r.Client.Captured("b@example.org", "welcome")
	if err != nil || len(got) != 1 || got[0].ID != "C1" {
		t.Fatalf("Captured = %+v, %v; want C1 alone", got, err)
	}
	m, err := r.Client.CapturedMessage("C1")
	if err != nil || string(m.Body) != raw || m.Parts.Text != "hi\r\n" {
		t.Fatalf("CapturedMessage = %+v, %v", m, err)
	}
	if err := r.Client.DeleteCaptured("C1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.CapturedMessage("C1"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("after delete: %v, want 404", err)
	}
	if n, err := r.Client.ClearCaptured(); err != nil || n != 1 {
		t.Fatalf("ClearCaptured = %d, %v", n, err)
	}
	// Without the token nothing is shown.
	if code, _ := r.Call(t, "GET", "/api/capture", "", nil); code == http.StatusOK {
		t.Fatal("no token: want a refusal")
	}
}
