package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"outbound/admin"
	"outbound/auth"
	"outbound/internal/admintest"
	"outbound/internal/dnstest"
	"outbound/spf"
)

// The zone authorizes the rig's default route (include _spf.example.net)
// for aligned.example only.
const spfZone = `$TTL 300
_spf.example.net.  TXT "v=spf1 ip4:192.0.2.0/25 ~all"
aligned.example.   TXT "v=spf1 include:_spf.example.net -all"
unaligned.example. TXT "v=spf1 ip4:198.51.100.0/24 -all"
`

func withSPF(t *testing.T) func(*admin.Options) {
	return func(o *admin.Options) {
		dns := dnstest.Start(t, spfZone)
		r, err := spf.NewResolver([]string{dns.Addr()}, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		o.SPF = &spf.Checker{Resolver: r}
	}
}

// Each domain the user may send from is checked against its route's
// upstream, once, with the exact fix for the ones not aligned.
func TestUserSPF(t *testing.T) {
	r := admintest.NewWith(t, withSPF(t))
	const user = "app@aligned.example"
	r.AddUsers(t, user)
	if err := r.Users.Update(user, func(u *auth.User) error {
		u.AllowFrom = []string{"unaligned.example", "news@Aligned.example"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Client.UserSPF(user)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Route != "default" || rep.Include != "_spf.example.net" || rep.Policy != "warn" || len(rep.Domains) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	a, u := rep.Domains[0], rep.Domains[1]
	if a.Domain != "aligned.example" || !a.Aligned || a.Verdict != "pass" || a.Fix != "" || len(a.Records) == 0 {
		t.Fatalf("aligned: %+v", a)
	}
	if u.Domain != "unaligned.example" || u.Aligned || !strings.Contains(u.Fix, "include:_spf.example.net") {
		t.Fatalf("unaligned: %+v", u)
	}
	// A sender sees its own, not another's.
	r.AddUsers(t, bob)
	if _, err := r.Client.ActingFor(user).UserSPF(user); err != nil {
		t.Fatalf("own: %v", err)
	}
	if _, err := r.Client.ActingFor(bob).UserSPF(user); statusOf(err) != http.StatusForbidden {
		t.Fatalf("another's: %v", err)
	}
	// Without a checker the endpoint says so.
	if _, err := admintest.New(t).Client.UserSPF(user); statusOf(err) != http.StatusNotImplemented {
		t.Fatalf("no checker: %v", err)
	}
}
