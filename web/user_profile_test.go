package web

import (
	"net/http"
	"strings"
	"testing"
)

// A signed-in sender finds the Apple profile on its E-mail settings page
// and downloads its own, and only its own; signed out, nothing.
func TestSenderDownloadsOwnAppleProfile(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "bob@example.com")
	b := r.browser(t)
	b.signIn("alice@example.com", senderPassword)

	page := b.get("/users/alice@example.com")
	if page.status != http.StatusOK || !strings.Contains(page.body, `href="/users/alice@example.com/profile.mobileconfig"`) ||
		!strings.Contains(page.body, "Download profile for Apple devices") {
		t.Fatalf("settings page: %d, no profile link", page.status)
	}
	got := b.get("/users/alice@example.com/profile.mobileconfig")
	if got.status != http.StatusOK || got.header.Get("Content-Type") != "application/x-apple-aspen-config" ||
		!strings.Contains(got.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", got.status, got.header)
	}
	for _, want := range []string{"<key>PayloadType</key><string>com.apple.mail.managed</string>",
		"<key>OutgoingMailServerUsername</key><string>alice@example.com</string>",
		"<key>OutgoingMailServerHostName</key><string>relay.test</string>"} {
		if !strings.Contains(got.body, want) {
			t.Errorf("profile lacks %s", want)
		}
	}

	if other := b.get("/users/bob@example.com/profile.mobileconfig"); other.status != http.StatusNotFound || strings.Contains(other.body, "bob@example.com</string>") {
		t.Errorf("another sender's profile: %d", other.status)
	}
	if out := r.browser(t).get("/users/alice@example.com/profile.mobileconfig"); out.status != http.StatusSeeOther || !strings.HasPrefix(out.location, "/login") {
		t.Errorf("signed out: %d %s", out.status, out.location)
	}
}
