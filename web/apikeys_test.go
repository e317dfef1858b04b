package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var newKeyField = regexp.MustCompile(`id="new-api-key" type="text" class="mono" value="([^"]+)"`)

// createKey creates a key named name for user through the page at from
// and returns the answer and the key it showed.
func createKey(t *testing.T, b *browser, user, name string) (response, string) {
	t.Helper()
	page := "/users/" + user
	r := b.submit(page, page+"/api-keys", url.Values{"name": {name}})
	if r.status != http.StatusOK {
		t.Fatalf("create API key: %d\n%s", r.status, r.body)
	}
	m := newKeyField.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("the answer does not show the new key:\n%s", r.body)
	}
	return r, m[1]
}

// The key is shown once, in the answer to Create API key, with the copy
// hint, and in no later page: not the user page, not a redirect's flash.
func TestAPIKeyShownOnceAndNeverAgain(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	b := rig.signedIn(t, "app@example.com")

	page := b.get("/users/app@example.com")
	wantIn(t, "the E-mail settings page", page, "<h2 id=\"api-keys-heading\">API keys</h2>", "No API keys yet.",
		`<label for="api-key-name">Name</label>`, "Create API key")

	r, key := createKey(t, b, "app@example.com", "billing app")
	wantIn(t, "the answer to Create API key", r, "Copy it now: it is shown only this once")
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("the page with the key may be cached: Cache-Control %q", r.header.Get("Cache-Control"))
	}
	// It is a real key of that user.
	rec, err := rig.apiKeys.Verify(key)
	if err != nil || rec.User != "app@example.com" || rec.Name != "billing app" {
		t.Fatalf("Verify(shown key) = %+v, %v", rec, err)
	}

	for _, path := range []string{"/users/app@example.com", "/", "/messages"} {
		later := b.get(path)
		if strings.Contains(later.body, key) {
			t.Errorf("GET %s shows the key again", path)
		}
	}
	later := b.get("/users/app@example.com")
	wantIn(t, "the E-mail settings page after creation", later, "billing app", rec.Prefix+"…")
	wantNotIn(t, "the E-mail settings page after creation", later, "Copy it now")
}

// Revoke asks first: a GET or a POST without confirmed=yes only shows
// the question; the confirmed POST revokes, and the key no longer works.
func TestAPIKeyRevokeNeedsConfirmation(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	b := rig.signedIn(t, operatorName)
	_, key := createKey(t, b, "app@example.com", "ci")
	rec, err := rig.apiKeys.Verify(key)
	if err != nil {
		t.Fatal(err)
	}
	revoke := "/users/app@example.com/api-keys/" + rec.Prefix + "/revoke"

	q := b.get(revoke)
	if q.status != http.StatusOK {
		t.Fatalf("GET %s: %d", revoke, q.status)
	}
	wantIn(t, "the confirmation page", q, "Revoke this API key?", rec.Prefix, `name="confirmed" value="yes"`)

	r := b.submit("/users/app@example.com", revoke, nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "Revoke this API key?") {
		t.Fatalf("unconfirmed POST: %d\n%s", r.status, r.body)
	}
	if _, err := rig.apiKeys.Verify(key); err != nil {
		t.Fatalf("an unconfirmed POST revoked the key: %v", err)
	}

	r = b.submit("/users/app@example.com", revoke, url.Values{"confirmed": {"yes"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("confirmed POST: %d\n%s", r.status, r.body)
	}
	if _, err := rig.apiKeys.Verify(key); err == nil {
		t.Fatal("the key still works after Revoke")
	}
	wantIn(t, "the user page after revoking", b.get("/users/app@example.com"), "is revoked", "No API keys yet.")
}

// A sender manages only its own keys: another user's are not found, for
// listing, creating and revoking alike.
func TestAPIKeysSenderOnlyItsOwn(t *testing.T) {
	rig := newRig(t)
	rig.addSender(t, "app@example.com")
	rig.addSender(t, "other@example.com")
	key, rec, err := rig.apiKeys.Create("other@example.com", "theirs")
	if err != nil {
		t.Fatal(err)
	}
	b := rig.signedIn(t, "app@example.com")
	csrf := b.csrf("/users/app@example.com")
	other := "/users/other@example.com"
	for _, c := range []struct {
		method, path string
	}{
		{"GET", other},
		{"POST", other + "/api-keys"},
		{"GET", other + "/api-keys/" + rec.Prefix + "/revoke"},
		{"POST", other + "/api-keys/" + rec.Prefix + "/revoke"},
	} {
		var r response
		if c.method == "GET" {
			r = b.get(c.path)
		} else {
			r = b.post(c.path, url.Values{"csrf": {csrf}, "confirmed": {"yes"}, "name": {"mine now"}})
		}
		if r.status != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", c.method, c.path, r.status)
		}
		if strings.Contains(r.body, rec.Prefix) {
			t.Errorf("%s %s shows the other user's key", c.method, c.path)
		}
	}
	if _, err := rig.apiKeys.Verify(key); err != nil {
		t.Fatalf("the other user's key was revoked: %v", err)
	}
	if keys, _ := rig.apiKeys.List("other@example.com"); len(keys) != 1 {
		t.Fatalf("the other user has %d keys, want 1", len(keys))
	}
}
