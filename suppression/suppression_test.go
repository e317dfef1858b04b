package suppression

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/bounce"
	"outbound/store"
)

func openTest(t *testing.T, scope Scope, now *time.Time) *Bolt {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b, err := OpenBolt(store.Bolt(db), scope, 0, func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBounceSuppressesPerUserAndExpiresAfter90Days(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := openTest(t, PerUser, &now)
	must(t, b.Add(Entry{User: "alice", Addr: "Gone@Example.com", Kind: Bounce, Reason: "550 5.1.1 no such user"}))
	e, err := b.Lookup("alice", "gone@example.COM")
	must(t, err)
	if e == nil || e.Reason != "550 5.1.1 no such user" || e.Addr != "gone@example.com" {
		t.Fatalf("Lookup = %+v", e)
	}
	if e, _ := b.Lookup("bob", "gone@example.com"); e != nil {
		t.Errorf("bob's mail is suppressed by alice's bounce: %+v", e)
	}
	now = now.Add(DefaultExpire)
	if e, _ := b.Lookup("alice", "gone@example.com"); e != nil {
		t.Errorf("still suppressed after 90 days: %+v", e)
	}
}

func TestRelayWideScopeSuppressesForEveryone(t *testing.T) {
	now := time.Now()
	b := openTest(t, RelayWide, &now)
	must(t, b.Add(Entry{User: "alice", Addr: "gone@example.com", Kind: Bounce, Reason: "x"}))
	if e, _ := b.Lookup("bob", "gone@example.com"); e == nil {
		t.Error("relay-wide suppression does not apply to bob")
	}
	if l, _ := b.List("bob"); len(l) != 0 {
		t.Errorf("bob lists alice's entries: %v", l)
	}
	if l, _ := b.List("alice"); len(l) != 1 {
		t.Errorf("alice lists %v", l)
	}
}

func TestComplaintNeverExpiresAndIsNotReplacedByABounce(t *testing.T) {
	now := time.Now()
	b := openTest(t, PerUser, &now)
	must(t, b.Complained("alice", "angry@example.com", "abuse report", "m1"))
	must(t, b.Add(Entry{User: "alice", Addr: "angry@example.com", Kind: Bounce, Reason: "550"}))
	now = now.Add(10 * DefaultExpire)
	e, _ := b.Lookup("alice", "angry@example.com")
	if e == nil || e.Kind != Complaint {
		t.Fatalf("Lookup = %+v, want the complaint", e)
	}
}

func TestDeleteLiftsAndListShowsActiveOnly(t *testing.T) {
	now := time.Now()
	b := openTest(t, PerUser, &now)
	must(t, b.Add(Entry{User: "alice", Addr: "a@example.com"}))
	must(t, b.Add(Entry{User: "alice", Addr: "b@example.com", Expires: now.Add(-time.Second)}))
	must(t, b.Add(Entry{User: "bob", Addr: "c@example.com"}))
	l, _ := b.List("alice")
	if len(l) != 1 || l[0].Addr != "a@example.com" || l[0].Kind != Manual {
		t.Fatalf("List(alice) = %+v", l)
	}
	if l, _ := b.List(""); len(l) != 2 {
		t.Errorf("List() = %+v", l)
	}
	found, err := b.Delete("alice", "A@example.com")
	must(t, err)
	if !found {
		t.Error("Delete found nothing")
	}
	if e, _ := b.Lookup("alice", "a@example.com"); e != nil {
		t.Errorf("still suppressed: %+v", e)
	}
	if found, _ := b.Delete("alice", "a@example.com"); found {
		t.Error("second Delete found it")
	}
}

func TestCallsForOnlyAddressFailures(t *testing.T) {
	for cat, want := range map[bounce.Category]bool{
		bounce.UnknownUser: true, bounce.UnknownDomain: true,
		bounce.MailboxFull: false, bounce.Policy: false, bounce.SpamContent: false,
	} {
		if CallsFor(cat) != want {
			t.Errorf("CallsFor(%s) = %v", cat, !want)
		}
	}
}

func TestParseScope(t *testing.T) {
	if s, err := ParseScope(""); err != nil || s != PerUser {
		t.Errorf(`ParseScope("") = %v, %v`, s, err)
	}
	if _, err := ParseScope("global"); err == nil {
		t.Error("global accepted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
