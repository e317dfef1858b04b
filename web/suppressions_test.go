package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"outbound/suppression"
)

// suppress puts addr on user's list as a bounce, as delivery does.
func (r *rig) suppress(t *testing.T, user, addr, reason string) {
	t.Helper()
	if err := r.supp.Add(suppression.Entry{User: user, Addr: addr, Kind: suppression.Bounce, Reason: reason}); err != nil {
		t.Fatal(err)
	}
}

// suppressed reports whether addr is on user's list.
func (r *rig) suppressed(t *testing.T, user, addr string) bool {
	t.Helper()
	e, err := r.supp.Lookup(user, addr)
	if err != nil {
		t.Fatal(err)
	}
	return e != nil
}

// An operator sees every user's suppressions under its own navigation
// entry, adds one through the form (the API's refusal shown verbatim,
// with what was entered) and lifts one after confirming.
func TestOperatorListsAddsAndLiftsSuppressions(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "bob@example.com")
	r.suppress(t, "alice@example.com", "gone@example.net", "550 5.1.1 User unknown")
	r.suppress(t, "bob@example.com", "old@example.org", "550 5.1.2 No such domain")
	op := r.signedIn(t, operatorName)

	page := op.get("/suppressions")
	if page.status != http.StatusOK {
		t.Fatalf("/suppressions: %d\n%s", page.status, page.body)
	}
	wantIn(t, "the Suppressions page", page, `aria-current="page">Suppressions<`, "<h1>Suppressions</h1>",
		"gone@example.net", "alice@example.com", "550 5.1.1 User unknown", "old@example.org", "bob@example.com",
		`data-label="Kind"`, ">bounce<", `data-label="Expires"`, ">Lift</button>",
		`<h2 id="add-suppression-heading">Add suppression</h2>`, `<label for="addr">Address</label>`,
		`<label for="supp_user">User</label>`, `<label for="reason">Reason</label>`, ">Add suppression</button>")

	// Refused by the API: per-user scope needs a user.
	res := op.submit("/suppressions", "/suppressions", url.Values{"addr": {"spam-trap@example.net"}, "reason": {"a trap"}})
	if res.status != http.StatusBadRequest {
		t.Fatalf("add without a user: %d, want 400\n%s", res.status, res.body)
	}
	wantIn(t, "the refusal", res, `role="alert"`, "user is required", `value="spam-trap@example.net"`, `value="a trap"`)

	res = op.submit("/suppressions", "/suppressions", url.Values{"addr": {"spam-trap@example.net"},
		"user": {"alice@example.com"}, "reason": {"a known spam trap"}})
	if res.status != http.StatusSeeOther || res.location != "/suppressions" {
		t.Fatalf("add: %d %q\n%s", res.status, res.location, res.body)
	}
	if !r.suppressed(t, "alice@example.com", "spam-trap@example.net") {
		t.Fatal("the added suppression is not stored")
	}
	wantIn(t, "after adding", op.get("/suppressions"), "spam-trap@example.net is suppressed for alice@example.com.",
		"a known spam trap", ">manual<")

	// Lift: the button asks first.
	confirm := op.get("/suppressions/lift?addr=gone%40example.net&user=alice%40example.com")
	if confirm.status != http.StatusOK {
		t.Fatalf("the lift confirmation: %d\n%s", confirm.status, confirm.body)
	}
	wantIn(t, "the lift confirmation", confirm, "Lift this suppression?", "550 5.1.1 User unknown",
		`name="confirmed" value="yes"`, ">Lift</button>")
	res = op.submit("/suppressions", "/suppressions/lift", url.Values{"addr": {"gone@example.net"},
		"user": {"alice@example.com"}, "confirmed": {"yes"}})
	if res.status != http.StatusSeeOther || res.location != "/suppressions" {
		t.Fatalf("lift: %d %q\n%s", res.status, res.location, res.body)
	}
	if r.suppressed(t, "alice@example.com", "gone@example.net") {
		t.Fatal("lifted, yet still suppressed")
	}
	if !r.suppressed(t, "bob@example.com", "old@example.org") {
		t.Fatal("lifting alice's entry lifted bob's")
	}
	wantIn(t, "after lifting", op.get("/suppressions"), "gone@example.net is no longer suppressed for alice@example.com")
	// An entry that is not there is not found, on both steps.
	if res := op.get("/suppressions/lift?addr=gone%40example.net&user=alice%40example.com"); res.status != http.StatusNotFound {
		t.Errorf("confirming a lifted entry: %d, want 404", res.status)
	}
}

// Lift without the confirmation only asks, and without the CSRF token is
// refused: the entry stays either way.
func TestLiftNeedsConfirmationAndCSRF(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.suppress(t, "alice@example.com", "gone@example.net", "550 5.1.1 User unknown")
	for _, login := range []string{operatorName, "alice@example.com"} {
		b := r.signedIn(t, login)
		form := url.Values{"addr": {"gone@example.net"}, "user": {"alice@example.com"}}
		res := b.submit("/", "/suppressions/lift", form)
		if res.status != http.StatusOK || !strings.Contains(res.body, "Lift this suppression?") {
			t.Errorf("%s: lift without confirmation: %d, want the question", login, res.status)
		}
		form.Set("confirmed", "yes")
		form.Del("csrf")
		if res := b.post("/suppressions/lift", form); res.status != http.StatusForbidden {
			t.Errorf("%s: lift without the CSRF token: %d, want 403", login, res.status)
		}
		if !r.suppressed(t, "alice@example.com", "gone@example.net") {
			t.Fatalf("%s: lifted without confirmation or token", login)
		}
	}
	op := r.signedIn(t, operatorName)
	if res := op.post("/suppressions", url.Values{"addr": {"x@example.net"}, "user": {"alice@example.com"}}); res.status != http.StatusForbidden {
		t.Errorf("add without the CSRF token: %d, want 403", res.status)
	}
	if r.suppressed(t, "alice@example.com", "x@example.net") {
		t.Fatal("added without the CSRF token")
	}
}

// A sender sees its own suppressions on its Messages page, with how to
// lift them, lifts one there, and can neither see another's, lift
// another's, nor add one.
func TestSenderSeesAndLiftsOnlyItsOwnSuppressions(t *testing.T) {
	r := newRig(t)
	r.addSender(t, "alice@example.com")
	r.addSender(t, "bob@example.com")
	r.suppress(t, "alice@example.com", "gone@example.net", "550 5.1.1 User unknown")
	r.suppress(t, "bob@example.com", "bobs-dead@example.org", "550 5.1.1 bob's reason")
	b := r.signedIn(t, "alice@example.com")

	if res := b.get("/suppressions"); res.status != http.StatusSeeOther || res.location != "/messages#suppressions" {
		t.Errorf("/suppressions as a sender: %d %q, want a redirect to her Messages", res.status, res.location)
	}
	msgs := b.get("/messages")
	wantIn(t, "alice's Messages", msgs, `<a href="#suppressions">1 suppressed recipient</a>`, `<section id="suppressions"`, "gone@example.net", "550 5.1.1 User unknown", ">Lift</button>")
	wantNotIn(t, "alice's Messages", msgs, "bobs-dead@example.org", "bob's reason", `href="/suppressions"`, "Add suppression", `data-label="User"`)

	// Bob's entry, named outright: not found, untouched.
	if res := b.get("/suppressions/lift?addr=bobs-dead%40example.org&user=bob%40example.com"); res.status != http.StatusNotFound {
		t.Errorf("confirming bob's lift: %d, want 404", res.status)
	}
	res := b.submit("/messages", "/suppressions/lift", url.Values{"addr": {"bobs-dead@example.org"},
		"user": {"bob@example.com"}, "confirmed": {"yes"}})
	if res.status != http.StatusNotFound {
		t.Errorf("lifting bob's: %d, want 404", res.status)
	}
	wantNotIn(t, "lifting bob's", res, "bob's reason")
	if !r.suppressed(t, "bob@example.com", "bobs-dead@example.org") {
		t.Fatal("alice lifted bob's suppression")
	}
	// Adding is the operators'.
	res = b.submit("/messages", "/suppressions", url.Values{"addr": {"x@example.net"}, "user": {"alice@example.com"}})
	if res.status != http.StatusForbidden {
		t.Errorf("a sender adding: %d, want 403", res.status)
	}
	if r.suppressed(t, "alice@example.com", "x@example.net") {
		t.Fatal("a sender added a suppression")
	}

	// Her own she lifts, confirming first.
	confirm := b.get("/suppressions/lift?addr=gone%40example.net")
	wantIn(t, "her lift confirmation", confirm, "Lift this suppression?", `href="/messages#suppressions"`)
	res = b.submit("/messages", "/suppressions/lift", url.Values{"addr": {"gone@example.net"}, "confirmed": {"yes"}})
	if res.status != http.StatusSeeOther || res.location != "/messages#suppressions" {
		t.Fatalf("her lift: %d %q\n%s", res.status, res.location, res.body)
	}
	if r.suppressed(t, "alice@example.com", "gone@example.net") {
		t.Fatal("her lift did not lift")
	}
	wantIn(t, "after her lift", b.get("/messages"), "gone@example.net is no longer suppressed: mail to it is accepted again.",
		"No suppressed recipients.")
}

// Under scope "relay" an entry is everyone's: the operator adds it
// without a user and the page says "all users".
func TestRelayWideSuppressionIsForAllUsers(t *testing.T) {
	r := newRig(t, rigOptions{suppressionScope: suppression.RelayWide})
	op := r.signedIn(t, operatorName)
	res := op.submit("/suppressions", "/suppressions", url.Values{"addr": {"trap@example.net"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", res.status, res.body)
	}
	wantIn(t, "the Suppressions page", op.get("/suppressions"), "trap@example.net is suppressed for all users.",
		`<td class="col-user" data-label="User"><span class="muted">all users</span></td>`, "added by the operator")
	res = op.submit("/suppressions", "/suppressions/lift", url.Values{"addr": {"trap@example.net"}, "user": {""}, "confirmed": {"yes"}})
	if res.status != http.StatusSeeOther || r.suppressed(t, "", "trap@example.net") {
		t.Fatalf("lift: %d, still suppressed: %v", res.status, r.suppressed(t, "", "trap@example.net"))
	}
}
