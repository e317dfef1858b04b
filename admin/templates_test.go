package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/sendapi"
	"outbound/store"
)

// The admin API keeps templates in the send API's store: versions, the
// send API's validation and rendering (a missing variable is 422 naming
// it), an unsaved template previewed, and a sender only its own.
func TestTemplatesOverTheAPI(t *testing.T) {
	store, err := sendapi.OpenTemplates(store.Bolt(testutil.OpenDB(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := admintest.NewWith(t, func(o *admin.Options) { o.Templates = store })
	c := r.Client
	for _, u := range []string{"alice@example.com", "bob@example.com"} {
		if _, err := r.Users.Add(u, "correct horse battery", nil); err != nil {
			t.Fatal(err)
		}
	}
	req := admin.TemplateRequest{Subject: "Hi {{.name}}", HTML: "<p>{{.name}}</p>", Variables: []string{"name"}}
	for want := 1; want <= 2; want++ {
		tpl, err := c.PutTemplate("alice@example.com", "welcome", req)
		if err != nil || tpl.Version != want {
			t.Fatalf("put %d: %+v, %v", want, tpl, err)
		}
	}
	if got, err := store.Get("alice@example.com", "welcome", 0); err != nil || got.Version != 2 {
		t.Fatalf("the send API's store: %+v, %v", got, err)
	}
	res, err := c.RenderTemplate("alice@example.com", "welcome", admin.RenderRequest{Data: map[string]any{"name": "<Ada>"}})
	if err != nil || res.Version != 2 || res.HTML != "<p>&lt;Ada&gt;</p>" || res.Text == "" {
		t.Fatalf("render: %+v, %v", res, err)
	}
	_, err = c.RenderTemplate("alice@example.com", "welcome", admin.RenderRequest{Data: map[string]any{}})
	if statusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), `needs variable "name"`) {
		t.Fatalf("missing variable: %v", err)
	}
	preview := admin.TemplateRequest{Subject: "Bye {{.name}}", Text: "bye"}
	res, err = c.RenderTemplate("alice@example.com", "draft", admin.RenderRequest{Data: map[string]any{"name": "Ada"}, Template: &preview})
	if err != nil || res.Subject != "Bye Ada" {
		t.Fatalf("preview: %+v, %v", res, err)
	}
	if _, err := store.Get("alice@example.com", "draft", 0); err == nil {
		t.Fatal("a preview was stored")
	}
	if _, err := c.PutTemplate("alice@example.com", "bad", admin.TemplateRequest{Text: "{{.x"}); statusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("an invalid template: %v", err)
	}
	bob := c.ActingFor("bob@example.com")
	if _, err := bob.Templates("alice@example.com"); statusOf(err) != http.StatusForbidden {
		t.Fatalf("bob read alice's templates: %v", err)
	}
	if list, err := bob.Templates("bob@example.com"); err != nil || len(list) != 0 {
		t.Fatalf("bob's own: %+v, %v", list, err)
	}
}

func TestTemplatesWithoutStoreAre501(t *testing.T) {
	r := admintest.New(t)
	r.Users.Add("alice@example.com", "correct horse battery", nil)
	if _, err := r.Client.Templates("alice@example.com"); statusOf(err) != http.StatusNotImplemented {
		t.Fatalf("%v", err)
	}
}
