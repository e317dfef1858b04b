package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/store"
	"outbound/suppression"
)

// An operator adds, lists and lifts suppressions; the relay's lookup sees
// each change, as RCPT would.
func TestSuppressionsAddListDelete(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, "alice@example.com", "bob@example.com")
	c := r.Client

	e, err := c.AddSuppression(admin.SuppressionRequest{User: "alice@example.com", Addr: "Gone@Example.net", Reason: "asked to stop"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Addr != "gone@example.net" || e.Kind != suppression.Manual || e.Reason != "asked to stop" || e.Created.IsZero() || e.Expires.IsZero() {
		t.Fatalf("added: %+v", e)
	}
	if _, err := c.AddSuppression(admin.SuppressionRequest{User: "bob@example.com", Addr: "gone@example.net"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Suppressions.Lookup("alice@example.com", "gone@example.net"); got == nil {
		t.Fatal("the relay does not see the suppression added")
	}

	all, err := c.Suppressions("")
	if err != nil || len(all) != 2 {
		t.Fatalf("list all: %+v %v", all, err)
	}
	own, err := c.Suppressions("bob@example.com")
	if err != nil || len(own) != 1 || own[0].User != "bob@example.com" || own[0].Reason != "added by the operator" {
		t.Fatalf("list bob's: %+v %v", own, err)
	}

	if err := c.DeleteSuppression("gone@example.net", "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Suppressions.Lookup("alice@example.com", "gone@example.net"); got != nil {
		t.Fatal("lifted, but the relay still refuses it")
	}
	if got, _ := r.Suppressions.Lookup("bob@example.com", "gone@example.net"); got == nil {
		t.Fatal("lifting alice's entry lifted bob's")
	}
	if err := c.DeleteSuppression("gone@example.net", "alice@example.com"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("lifting it twice: %v", err)
	}
	if err := c.DeleteSuppression("nobody@example.net", ""); statusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), "no active suppression of nobody@example.net") {
		t.Fatalf("lifting what is not there: %v", err)
	}
}

// "outbound suppression del ADDR", as the relay's 550 5.1.1 tells senders
// to run, names no user: it lifts the address from every list.
func TestSuppressionDeleteWithoutUserLiftsEveryList(t *testing.T) {
	r := admintest.New(t)
	for _, u := range []string{"alice@example.com", "bob@example.com"} {
		if err := r.Suppressions.Add(suppression.Entry{User: u, Addr: "gone@example.net", Kind: suppression.Bounce, Reason: "550 5.1.1 no such user"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Client.DeleteSuppression("GONE@example.net", ""); err != nil {
		t.Fatal(err)
	}
	if all, _ := r.Suppressions.List(""); len(all) != 0 {
		t.Fatalf("left: %+v", all)
	}
}

// A sender sees and lifts only its own suppressions, adds none, and
// another's entry is "not found" to it.
func TestSuppressionsSenderOnlyItsOwn(t *testing.T) {
	r := admintest.New(t)
	for _, u := range []string{"alice@example.com", "bob@example.com"} {
		if err := r.Suppressions.Add(suppression.Entry{User: u, Addr: u + ".rcpt@example.net", Reason: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	alice := r.Client.ActingFor("alice@example.com")
	if list, err := alice.Suppressions(""); err != nil || len(list) != 1 || list[0].User != "alice@example.com" {
		t.Fatalf("alice's list: %+v %v", list, err)
	}
	if _, err := alice.Suppressions("bob@example.com"); statusOf(err) != http.StatusForbidden {
		t.Fatalf("alice listing bob's: %v", err)
	}
	if err := alice.DeleteSuppression("bob@example.com.rcpt@example.net", "bob@example.com"); statusOf(err) != http.StatusForbidden {
		t.Fatalf("alice lifting bob's by name: %v", err)
	}
	if err := alice.DeleteSuppression("bob@example.com.rcpt@example.net", ""); statusOf(err) != http.StatusNotFound {
		t.Fatalf("alice lifting bob's: %v", err)
	}
	if got, _ := r.Suppressions.Lookup("bob@example.com", "bob@example.com.rcpt@example.net"); got == nil {
		t.Fatal("alice lifted bob's suppression")
	}
	if _, err := alice.AddSuppression(admin.SuppressionRequest{User: "alice@example.com", Addr: "x@example.net"}); statusOf(err) != http.StatusForbidden {
		t.Fatalf("a sender adding: %v", err)
	}
	if err := alice.DeleteSuppression("alice@example.com.rcpt@example.net", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Suppressions.Lookup("alice@example.com", "alice@example.com.rcpt@example.net"); got != nil {
		t.Fatal("alice's own suppression is still there")
	}
}

// Under scope "relay" one list serves every user: an entry needs no user,
// and a sender may lift only one its own mail caused.
func TestSuppressionsRelayWide(t *testing.T) {
	relayWide, err := suppression.OpenBolt(store.Bolt(testutil.OpenDB(t)), suppression.RelayWide, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := admintest.NewWith(t, func(o *admin.Options) { o.Suppressions = relayWide })
	if _, err := r.Client.AddSuppression(admin.SuppressionRequest{Addr: "gone@example.net"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := relayWide.Lookup("anyone@example.com", "gone@example.net"); got == nil {
		t.Fatal("a relay-wide entry does not apply to every user")
	}
	if err := r.Client.ActingFor("alice@example.com").DeleteSuppression("gone@example.net", ""); statusOf(err) != http.StatusNotFound {
		t.Fatalf("a sender lifting the operator's relay-wide entry: %v", err)
	}
	if err := r.Client.DeleteSuppression("gone@example.net", ""); err != nil {
		t.Fatal(err)
	}
}

// Bad input is refused with 400 and says what to send; an unknown user
// is 404.
func TestSuppressionsBadInput(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, "alice@example.com")
	for _, c := range []struct{ body, want string }{
		{`{"user":"alice@example.com"}`, "addr is required"},
		{`{"user":"alice@example.com","addr":"not an address"}`, "addr must be a bare e-mail address"},
		{`{"user":"alice@example.com","addr":"Bob <bob@example.net>"}`, "addr must be a bare e-mail address"},
		{`{"addr":"bob@example.net"}`, `user is required: under [suppression] scope = "user"`},
		{`{"user":"alice@example.com","address":"bob@example.net"}`, "invalid JSON body"},
	} {
		if code, _, raw := call(t, r, "POST", "/api/suppressions", c.body, token); code != 400 || !strings.Contains(errorOf(raw), c.want) {
			t.Errorf("POST %s: %d %s, want 400 %q", c.body, code, raw, c.want)
		}
	}
	if code, _, raw := call(t, r, "POST", "/api/suppressions", `{"user":"nobody@example.com","addr":"bob@example.net"}`, token); code != 404 {
		t.Errorf("unknown user: %d %s", code, raw)
	}
	if all, _ := r.Suppressions.List(""); len(all) != 0 {
		t.Fatalf("refused requests stored %+v", all)
	}
}
