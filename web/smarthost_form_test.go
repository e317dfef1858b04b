package web

import (
	"net/http"
	"testing"
)

// The Add smarthost form has Fallback even on a relay without another
// smarthost (None alone, and a hint that says why), and its button says
// what it does; a smarthost's edit form keeps Save, and a user's own SMTP
// server has no Fallback.
func TestAddSmarthostFormHasFallbackAndAddButton(t *testing.T) {
	r := newRig(t)
	b := r.signedIn(t, operatorName)
	const none = "Another SMTP smarthost must exist to fall back to; there is none yet."
	page := b.get("/smarthosts")
	wantIn(t, "/smarthosts with no smarthost", page, `<label for="fallback">Fallback</label>`,
		`<select id="fallback" name="fallback" aria-describedby="fallback-hint">`, `<option value="">None</option>`, none,
		`<button type="submit" class="button-primary">Add smarthost</button>`)
	wantNotIn(t, "/smarthosts", page, ">Save</button>")
	everyControlLabelled(t, "/smarthosts", page)

	r.addSmarthost(t, "sg")
	page = b.get("/smarthosts")
	wantIn(t, "/smarthosts with sg", page, `<option value="">None</option>`, `<option value="sg">sg</option>`)
	wantNotIn(t, "/smarthosts with sg", page, none)
	// sg may not fall back to itself: its own form has None alone.
	page = b.get("/smarthosts/sg")
	wantIn(t, "sg's page", page, `<label for="fallback">Fallback</label>`, none, `class="button-primary">Save</button>`)
	wantNotIn(t, "sg's page", page, `<option value="sg">`, ">Add smarthost</button>")

	r.addSender(t, "app@example.com")
	wantNotIn(t, "a user's page", b.get("/users/app@example.com"), `id="fallback"`)
}

// A sender is not offered Secure connection None for its own SMTP server
// (a server on this machine, which the API refuses a sender), unless it
// is what is stored; an operator is offered it on the same page.
func TestSenderNotOfferedTLSNone(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	const page, option = "/users/alice@example.com", `<option value="none"`
	alice := r.signedIn(t, "alice@example.com")
	own := alice.get(page)
	wantIn(t, "alice's page", own, `<label for="tls">Secure connection</label>`, `<option value="starttls">`)
	wantNotIn(t, "alice's page", own, option, "None (only a server on this machine)")
	op := r.signedIn(t, operatorName)
	wantIn(t, "alice's page for an operator", op.get(page), option+`>None (only a server on this machine)</option>`)

	// An operator gives her a server on this machine: she sees it as it is.
	if res := op.submit(page, page+"/email", emailForm(startUpstream(t), upPassword)); res.status != http.StatusSeeOther {
		t.Fatalf("operator's save: %d\n%s", res.status, res.body)
	}
	wantIn(t, "alice's page with a server on this machine", alice.get(page), option+` selected>`)
}

// With private hosts allowed a sender may use a server on this machine,
// so None is offered; an operator always has it.
func TestOwnSMTPFieldsTLSModes(t *testing.T) {
	has := func(f SMTPFields) bool {
		for _, c := range f.TLSModes {
			if c.Value == tlsNone {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		operator, allowPrivate bool
		tls                    string
		want                   bool
	}{
		{false, false, "", false},
		{false, false, "starttls", false},
		{false, false, tlsNone, true},
		{false, true, "", true},
		{true, false, "", true},
	} {
		f := ownSMTPFields(SMTPForm{TLS: c.tls}, c.operator, c.allowPrivate)
		if has(f) != c.want || len(f.TLSModes) < len(tlsModes)-1 {
			t.Errorf("operator %v, allowPrivate %v, stored %q: modes %v, want None offered %v",
				c.operator, c.allowPrivate, c.tls, f.TLSModes, c.want)
		}
	}
	if has(smtpFields(SMTPForm{})) != true || len(tlsModes) != 4 {
		t.Fatal("the smarthost forms lost None")
	}
}
