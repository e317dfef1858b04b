package web

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"outbound/internal/testutil"
)

// smarthostForm is the Add smarthost form for a smarthost on up.
func smarthostForm(name string, up *testutil.Upstream, password string) url.Values {
	return url.Values{"name": {name}, "host": {up.Host}, "port": {strconv.Itoa(up.Port)}, "tls": {"none"},
		"username": {upUser}, "password": {password}}
}

func TestSmarthostsPageAndAdd(t *testing.T) {
	r := newRig(t)
	r.addSmarthost(t, "backup")
	up := startUpstream(t)
	b := r.signedIn(t, operatorName)
	page := b.get("/smarthosts")
	wantIn(t, "/smarthosts", page, `href="/smarthosts/backup"`, "127.0.0.1:2525", `aria-current="page">Smarthosts<`,
		`href="#add-smarthost">Add smarthost</a>`, `<label for="name">Name</label>`, `<label for="preset">Provider</label>`,
		`<label for="host">SMTP server</label>`, `<label for="port">SMTP port</label>`, `<label for="username">Username</label>`,
		`<label for="password">Password</label>`, `<label for="tls">Secure connection</label>`, `<label for="fallback">Fallback</label>`,
		`<option value="backup">backup</option>`, `<option value="sendgrid">SendGrid</option>`, ">Test connection</button>")

	// A failing add: refused with the report, until Save anyway.
	res := b.submit("/smarthosts", "/smarthosts/new", smarthostForm("sg", up, "wrong-password-000"))
	if res.status != http.StatusUnprocessableEntity {
		t.Fatalf("failing add: %d\n%s", res.status, res.body)
	}
	wantIn(t, "failing add", res, "Not saved.", "step-fail", ">Save anyway</button>", `formaction="/smarthosts/new"`, `value="sg"`)
	if _, err := r.hosts.Get("sg"); err == nil {
		t.Fatal("saved")
	}
	// Test connection of the form, unsaved.
	wantIn(t, "test", b.submit("/smarthosts", "/smarthosts/new/test", smarthostForm("sg", up, upPassword)), "Connection test passed")
	form := smarthostForm("sg", up, upPassword)
	form.Set("fallback", "backup")
	res = b.submit("/smarthosts", "/smarthosts/new", form)
	if res.status != http.StatusSeeOther || res.location != "/smarthosts/sg" {
		t.Fatalf("add: %d %s\n%s", res.status, res.location, res.body)
	}
	h, err := r.hosts.Get("sg")
	if err != nil || h.Fallback != "backup" || h.Username != upUser {
		t.Fatalf("stored: %+v %v", h, err)
	}
	wantIn(t, "sg's page", b.get("/smarthosts/sg"), "Smarthost sg added: the connection test passed.", "****xyz789",
		`<option value="backup" selected>backup</option>`, ">Delete</button>", "Yes, delete smarthost sg")
}

func TestSmarthostEditTestAndPasswordRule(t *testing.T) {
	r := newRig(t)
	up := startUpstream(t)
	b := r.signedIn(t, operatorName)
	if res := b.submit("/smarthosts", "/smarthosts/new", smarthostForm("sg", up, upPassword)); res.status != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", res.status, res.body)
	}
	// Test and save with the password left empty: the stored one.
	form := smarthostForm("sg", up, "")
	form.Del("name")
	wantIn(t, "test with the stored password", b.submit("/smarthosts/sg", "/smarthosts/sg/test", form), "Connection test passed")
	form.Set("username", upUser)
	if res := b.submit("/smarthosts/sg", "/smarthosts/sg", form); res.status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", res.status, res.body)
	}
	// Another port needs the password again: the API's refusal, verbatim.
	form.Set("port", "2")
	res := b.submit("/smarthosts/sg", "/smarthosts/sg", form)
	if res.status != http.StatusBadRequest {
		t.Fatalf("moved without the password: %d", res.status)
	}
	wantIn(t, "moved without the password", res, `role="alert"`, "requires its password again", `value="2"`)
	if h, _ := r.hosts.Get("sg"); h.Port != up.Port {
		t.Fatal("port changed")
	}
}

// Delete asks for confirmation, and is refused while users are routed
// through the smarthost, the page naming them as the API does.
func TestSmarthostDeleteRefusedWhileInUse(t *testing.T) {
	r := newRig(t)
	r.addSmarthost(t, "sg")
	r.addSender(t, "alice@example.com")
	if _, err := r.users.SetRoute([]string{"alice@example.com"}, "sg"); err != nil {
		t.Fatal(err)
	}
	b := r.signedIn(t, operatorName)
	b.submit("/smarthosts/sg", "/smarthosts/sg/delete", nil)
	wantIn(t, "unconfirmed", b.get("/smarthosts/sg"), "Not deleted: tick the box to confirm first.")
	b.submit("/smarthosts/sg", "/smarthosts/sg/delete", url.Values{"confirm": {"yes"}})
	wantIn(t, "in use", b.get("/smarthosts/sg"), "Not deleted:", "is the route of alice@example.com")
	if _, err := r.hosts.Get("sg"); err != nil {
		t.Fatal("deleted while in use")
	}
	r.users.SetRoute([]string{"alice@example.com"}, "")
	res := b.submit("/smarthosts/sg", "/smarthosts/sg/delete", url.Values{"confirm": {"yes"}})
	if res.status != http.StatusSeeOther || res.location != "/smarthosts" {
		t.Fatalf("delete: %d %s", res.status, res.location)
	}
	if _, err := r.hosts.Get("sg"); err == nil {
		t.Fatal("not deleted")
	}
	if page := b.get("/smarthosts/sg"); page.status != http.StatusNotFound {
		t.Fatalf("deleted smarthost's page: %d", page.status)
	}
}
