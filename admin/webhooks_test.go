package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/events"
	"outbound/internal/admintest"
)

// A user's endpoints are added (the secret shown once), listed without
// the secret, re-enabled and deleted; URLs that are not https at a public
// address are refused with what to change.
func TestWebhooksAddListEnableDelete(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, "alice@example.com")
	c := r.Client
	created, err := c.AddWebhook("alice@example.com", admin.WebhookRequest{URL: "https://93.184.216.34/hooks", Kinds: []events.Kind{events.Failed}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Secret, "whsec_") || created.ID == "" || created.User != "alice@example.com" {
		t.Fatalf("created: %+v", created)
	}
	_, body := r.Call(t, "GET", "/api/users/alice@example.com/webhooks", admintest.Token, nil)
	if strings.Contains(body, created.Secret) || strings.Contains(body, created.Secret[10:]) {
		t.Errorf("the list shows the secret: %s", body)
	}
	list, err := c.Webhooks("alice@example.com")
	if err != nil || len(list) != 1 || list[0].ID != created.ID || list[0].Kinds[0] != events.Failed {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := c.EnableWebhook("alice@example.com", created.ID); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"https://127.0.0.1/hooks", "http://93.184.216.34/hooks", "https://169.254.169.254/"} {
		_, err := c.AddWebhook("alice@example.com", admin.WebhookRequest{URL: u})
		if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "[webhooks]") {
			t.Errorf("adding %s: %v, want 400 naming the setting", u, err)
		}
	}
	if err := c.DeleteWebhook("alice@example.com", created.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteWebhook("alice@example.com", created.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("deleting twice: %v", err)
	}
}

// A sender acting for itself manages its own endpoints only: another
// user's are forbidden by name and not found by ID.
func TestSenderManagesOnlyItsOwnWebhooks(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, "alice@example.com", "bob@example.com")
	bobs, err := r.Client.AddWebhook("bob@example.com", admin.WebhookRequest{URL: "https://93.184.216.34/bob"})
	if err != nil {
		t.Fatal(err)
	}
	alice := r.Client.ActingFor("alice@example.com")
	own, err := alice.AddWebhook("alice@example.com", admin.WebhookRequest{URL: "https://93.184.216.34/alice"})
	if err != nil {
		t.Fatalf("a sender adding its own endpoint: %v", err)
	}
	if list, err := alice.Webhooks("alice@example.com"); err != nil || len(list) != 1 || list[0].ID != own.ID {
		t.Fatalf("alice's list: %+v %v", list, err)
	}
	if _, err := alice.Webhooks("bob@example.com"); statusOf(err) != http.StatusForbidden {
		t.Errorf("alice listing bob's: %v", err)
	}
	if _, err := alice.AddWebhook("bob@example.com", admin.WebhookRequest{URL: "https://93.184.216.34/x"}); statusOf(err) != http.StatusForbidden {
		t.Errorf("alice adding to bob's: %v", err)
	}
	if err := alice.DeleteWebhook("bob@example.com", bobs.ID); statusOf(err) != http.StatusForbidden {
		t.Errorf("alice deleting bob's by his name: %v", err)
	}
	if err := alice.DeleteWebhook("alice@example.com", bobs.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("alice deleting bob's by its ID under her name: %v", err)
	}
	if _, err := alice.EnableWebhook("alice@example.com", bobs.ID); statusOf(err) != http.StatusNotFound {
		t.Errorf("alice enabling bob's: %v", err)
	}
	if list, _ := r.Client.Webhooks("bob@example.com"); len(list) != 1 {
		t.Errorf("bob's endpoints: %+v", list)
	}
}
