package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/queue"
)

const (
	bob   = "bob@example.com"
	alice = "alice@example.com"
	// bobsHost is bob's own SMTP server in a rig: admintest's upstream.
	bobsHost = "own-bob_example.com"
)

// ownRequest is an own SMTP server on the rig's upstream, which passes
// its connection test (given by an operator: it has a CA file).
func ownRequest(r *admintest.Rig) admin.OwnSmarthostRequest {
	return admin.OwnSmarthostRequest{ConnectionSettings: admin.ConnectionSettings{Host: r.Upstream.Host, Port: r.Upstream.Port,
		TLS: "starttls", Username: admintest.UpstreamUser, Password: admintest.UpstreamPassword, CAFile: r.CAFile}}
}

// plainUpstream is an SMTP server on loopback without TLS (allowed there),
// with AUTH, as a sender's own SMTP server in a test: it has no CA file to
// give.
func plainUpstream(t *testing.T) (*testutil.Upstream, admin.OwnSmarthostRequest) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{Username: "bob-login", Password: "bob-password-abc123"})
	return up, admin.OwnSmarthostRequest{ConnectionSettings: admin.ConnectionSettings{
		Host: up.Host, Port: up.Port, TLS: "none", Username: "bob-login", Password: "bob-password-abc123"}}
}

// actingCall sends a request with the acting-sender header, as the web
// interface does for a signed-in sender; body is JSON-encoded unless nil.
func actingCall(t *testing.T, r *admintest.Rig, sender, method, path string, body any) (int, string) {
	t.Helper()
	var in io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		in = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, r.URL+path, in)
	req.Header.Set("Authorization", "Bearer "+token)
	if sender != "" {
		req.Header.Set(admin.ActingSenderHeader, sender)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestOwnSmarthostIsTestedSavedAndRouted(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, bob)
	res, err := r.Client.SetOwnSmarthost(bob, ownRequest(r))
	if err != nil || !res.Saved || !res.Test.OK || res.Smarthost.Name != bobsHost {
		t.Fatalf("save: %v %+v", err, res)
	}
	if res.Smarthost.Password != "****xyz789" || len(res.Smarthost.Users) != 1 || res.Smarthost.Users[0] != bob {
		t.Fatalf("answer: %+v", res.Smarthost)
	}
	if routeOf(t, r, bob) != bobsHost {
		t.Fatalf("bob is routed through %q", routeOf(t, r, bob))
	}
	h, err := r.Smarthosts.Get(bobsHost)
	if err != nil || h.Owner != bob || h.PublicOnly {
		t.Fatalf("stored: %+v %v; want owned by bob, any address (an operator saved it)", h, err)
	}
	d, err := r.Client.User(bob)
	if err != nil || d.Smarthost == nil || d.Smarthost.Name != bobsHost || d.Limits.PerDay != 500 {
		t.Fatalf("user detail: %+v %v", d, err)
	}
	// Saved again without the password: the stored one is kept and used.
	req := ownRequest(r)
	req.Password = ""
	if res, err := r.Client.SetOwnSmarthost(bob, req); err != nil || !res.Test.OK || res.Smarthost.Password != "****xyz789" {
		t.Fatalf("save keeping the password: %v %+v", err, res)
	}
	// ...but not to another port: the password goes only where it went.
	req.Port++
	if _, err := r.Client.SetOwnSmarthost(bob, req); statusOf(err) != 400 || !strings.Contains(err.Error(), "requires its password again") {
		t.Fatalf("moved without the password: %v", err)
	}
	// No user, no smarthost.
	if _, err := r.Client.SetOwnSmarthost("nobody@example.com", ownRequest(r)); statusOf(err) != 404 {
		t.Fatalf("unknown user: %v", err)
	}
}

// "Save anyway": a failing test refuses the save with the report, and the
// user stays where it was, until the request forces it.
func TestOwnSmarthostFailingTestNeedsForce(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, bob)
	req := ownRequest(r)
	req.Password = "wrong-password-000000"
	res, err := r.Client.SetOwnSmarthost(bob, req)
	if statusOf(err) != http.StatusUnprocessableEntity || res.Saved || res.Test == nil || res.Test.Failed().Name != "auth" ||
		!strings.Contains(err.Error(), "force the save") {
		t.Fatalf("failing save: %v %+v", err, res)
	}
	if _, err := r.Smarthosts.Get(bobsHost); err == nil || routeOf(t, r, bob) != "" {
		t.Fatal("a failing own smarthost was saved or routed to")
	}
	req.Force = true
	if res, err := r.Client.SetOwnSmarthost(bob, req); err != nil || !res.Saved || res.Test.OK {
		t.Fatalf("forced save: %v %+v", err, res)
	}
	if routeOf(t, r, bob) != bobsHost {
		t.Fatal("forced save not routed")
	}
}

func TestOwnSmarthostDeleteGoesBackToTheDefaultRoute(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, bob)
	if _, err := r.Client.SetOwnSmarthost(bob, ownRequest(r)); err != nil {
		t.Fatal(err)
	}
	d, err := r.Client.DeleteOwnSmarthost(bob)
	if err != nil || d.Route != "default" || d.Smarthost != nil || d.Limits.PerDay != 2 {
		t.Fatalf("delete: %v %+v", err, d)
	}
	if _, err := r.Smarthosts.Get(bobsHost); err == nil {
		t.Fatal("own smarthost left behind")
	}
	// Again: nothing to delete, still fine.
	if _, err := r.Client.DeleteOwnSmarthost(bob); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	// Deleting the user deletes its own smarthost too.
	if _, err := r.Client.SetOwnSmarthost(bob, ownRequest(r)); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.DeleteUser(bob); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Smarthosts.Get(bobsHost); err == nil {
		t.Fatal("a deleted user's own smarthost is left behind")
	}
}

// An own smarthost carries its owner's credentials: no one else is routed
// through it, and it is no fallback.
func TestOwnSmarthostOnlyForItsOwner(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, bob, alice)
	if _, err := r.Client.SetOwnSmarthost(bob, ownRequest(r)); err != nil {
		t.Fatal(err)
	}
	for _, req := range []admin.RouteRequest{
		{Users: []string{alice}, Smarthost: bobsHost},
		{Users: []string{bob, alice}, Smarthost: bobsHost},
		{From: "default", Smarthost: bobsHost},
	} {
		_, err := r.Client.SetRoutes(req)
		if statusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "own SMTP server of user "+bob) {
			t.Fatalf("route %+v: %v", req, err)
		}
	}
	if routeOf(t, r, alice) != "" {
		t.Fatal("alice routed through bob's server")
	}
	if v, err := r.Client.Smarthost(bobsHost); err != nil || v.Owner != bob {
		t.Fatalf("smarthost view: %+v %v; want its owner", v, err)
	}
	// Moved back to the default route in bulk, bob keeps his settings,
	// which his page still shows.
	if _, err := r.Client.SetRoutes(admin.RouteRequest{Users: []string{bob}, Default: true}); err != nil {
		t.Fatal(err)
	}
	if d, err := r.Client.User(bob); err != nil || d.Smarthost != nil || d.OwnSmarthost == nil ||
		d.OwnSmarthost.Name != bobsHost || d.OwnSmarthost.Password != "****xyz789" {
		t.Fatalf("bob on the default route: %+v %v", d, err)
	}
	fb := r.SmarthostRequest("shared")
	fb.Fallback = bobsHost
	if _, err := r.Client.AddSmarthost(fb); statusOf(err) != 400 || !strings.Contains(err.Error(), "own SMTP server") {
		t.Fatalf("fallback to an own smarthost: %v", err)
	}
}

// zone resolves names from a fixed table, for the public-address check.
type zone map[string]string

func (z zone) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := z[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var insideZone = zone{"smtp.inside.example": "10.0.0.5", "metadata.example": "169.254.169.254"}

// A sender's own SMTP server must be on a public address, for the test
// and for the save; operators may set any host.
func TestSenderHostMustBePublic(t *testing.T) {
	r := admintest.NewWith(t, func(o *admin.Options) { o.Resolver = insideZone })
	r.AddUsers(t, bob)
	_, req := plainUpstream(t)
	sender := r.Client.ActingFor(bob)
	for host, want := range map[string]string{
		"127.0.0.1":           "but 127.0.0.1 is a loopback address",
		"smtp.inside.example": "but smtp.inside.example resolves to 10.0.0.5, a private address",
		"metadata.example":    "resolves to 169.254.169.254, a cloud metadata address",
	} {
		req.Host, req.TLS = host, "starttls"
		if host == "127.0.0.1" {
			req.TLS = "none"
		}
		req.Force = true // not even "Save anyway"
		_, err := sender.SetOwnSmarthost(bob, req)
		if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "web.allow_private_hosts") {
			t.Errorf("save %s: %v", host, err)
		}
		_, err = sender.TestConnection(admin.ConnectionTestRequest{ConnectionSettings: admin.ConnectionSettings{Host: req.Host, Port: req.Port, TLS: req.TLS}})
		if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), want) {
			t.Errorf("test %s: %v", host, err)
		}
	}
	if _, err := r.Smarthosts.Get(bobsHost); err == nil {
		t.Fatal("saved")
	}
	// An operator may.
	_, req = plainUpstream(t)
	if res, err := r.Client.SetOwnSmarthost(bob, req); err != nil || !res.Test.OK {
		t.Fatalf("operator: %v %+v", err, res)
	}
}

// With web.allow_private_hosts the sender may use a private host; what it
// saves is still marked as its choice, so delivery would refuse private
// addresses again if the operator turned the setting off.
func TestSenderHostAllowedByOperator(t *testing.T) {
	r := admintest.NewWith(t, func(o *admin.Options) { o.AllowPrivateHosts = true })
	r.AddUsers(t, bob)
	up, req := plainUpstream(t)
	sender := r.Client.ActingFor(bob)
	rep, err := sender.TestConnection(admin.ConnectionTestRequest{ConnectionSettings: admin.ConnectionSettings{
		Host: req.Host, Port: req.Port, TLS: "none", Username: req.Username, Password: req.Password}})
	if err != nil || !rep.OK {
		t.Fatalf("test: %v %+v", err, rep)
	}
	res, err := sender.SetOwnSmarthost(bob, req)
	if err != nil || !res.Test.OK {
		t.Fatalf("save: %v %+v", err, res)
	}
	if h, _ := r.Smarthosts.Get(bobsHost); !h.PublicOnly || h.Owner != bob {
		t.Fatalf("stored %+v; want the sender's choice marked", h)
	}
	if up.Connections() != 2 {
		t.Fatalf("upstream saw %d sessions, want the two tests", up.Connections())
	}
	if strings.Contains(res.Smarthost.Password, req.Password) {
		t.Fatal("password in the answer")
	}
}

// Without the setting, the sender's connection test dials public
// addresses only: a name that passes the check by name and then leads to
// loopback is still refused, at connect.
func TestSenderConnectionTestDialsPublicOnly(t *testing.T) {
	// "localhost" is not resolved by the check's zone (it passes, as a
	// name that does not resolve does), but the dialer resolves it to
	// loopback.
	r := admintest.NewWith(t, func(o *admin.Options) { o.Resolver = insideZone })
	r.AddUsers(t, bob)
	up, req := plainUpstream(t)
	rep, err := r.Client.ActingFor(bob).TestConnection(admin.ConnectionTestRequest{ConnectionSettings: admin.ConnectionSettings{Host: "localhost", Port: req.Port, TLS: "none"}})
	if err != nil || rep.OK || rep.Failed().Name != "connect" || !strings.Contains(rep.Failed().Error, "loopback address") {
		t.Fatalf("test: %v %+v", err, rep)
	}
	if up.Connections() != 0 {
		t.Fatal("the test reached the upstream")
	}
}

func TestConnectionTestEndpoint(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, bob)
	good := admin.ConnectionTestRequest{ConnectionSettings: admin.ConnectionSettings{Host: r.Upstream.Host, Port: r.Upstream.Port,
		TLS: "starttls", Username: admintest.UpstreamUser, Password: admintest.UpstreamPassword, CAFile: r.CAFile}}
	rep, err := r.Client.TestConnection(good)
	if err != nil || !rep.OK {
		t.Fatalf("good settings: %v %+v", err, rep)
	}
	bad := good
	bad.Password = "wrong-password-000000"
	if rep, err := r.Client.TestConnection(bad); err != nil || rep.OK || rep.Failed().Name != "auth" || rep.Failed().Hint == "" {
		t.Fatalf("wrong password: %v %+v", err, rep)
	}
	// The stored password of bob's own server, or of a named smarthost,
	// while host, port and TLS are the stored ones.
	if _, err := r.Client.SetOwnSmarthost(bob, ownRequest(r)); err != nil {
		t.Fatal(err)
	}
	r.AddSmarthost(t, "sg")
	stored := good
	stored.Password = ""
	for _, who := range []admin.ConnectionTestRequest{{User: bob}, {Smarthost: "sg"}} {
		req := stored
		req.User, req.Smarthost = who.User, who.Smarthost
		if rep, err := r.Client.TestConnection(req); err != nil || !rep.OK {
			t.Fatalf("stored password of %+v: %v %+v", who, err, rep)
		}
		req.Port = 1
		if _, err := r.Client.TestConnection(req); statusOf(err) != 400 || !strings.Contains(err.Error(), "requires its password again") {
			t.Fatalf("stored password to another port, %+v: %v", who, err)
		}
	}
	code, body := r.Call(t, "POST", "/api/connection-test", token, stored)
	if code != 200 || strings.Contains(body, admintest.UpstreamPassword) {
		t.Fatalf("answer: %d %s", code, body)
	}
	if code, body := r.Call(t, "POST", "/api/connection-test", token, admin.ConnectionTestRequest{ConnectionSettings: admin.ConnectionSettings{Host: "x.example", Port: 587, TLS: "none"}}); code != 400 || !strings.Contains(body, "loopback") {
		t.Fatalf("bad settings: %d %s", code, body)
	}
}

// A request made for a sender acts on that sender only: its own user,
// usage, sender settings, own SMTP server and messages; everything else
// is refused with 403, or 404 for another's message.
func TestSenderActsOnlyOnItself(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, bob, alice)
	r.AddSmarthost(t, "sg")
	add := func(user string) string {
		m := &queue.Message{User: user, From: user, Recipients: []queue.Recipient{{Addr: "x@example.net", Status: queue.Queued}}}
		if err := r.Queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	bobs, alices := add(bob), add(alice)
	bobPath, alicePath := "/api/users/"+bob, "/api/users/"+alice
	conn := admin.ConnectionSettings{Host: "smtp.example.com", Port: 587, TLS: "starttls"}
	withCA := func(caFile string) admin.ConnectionSettings { c := conn; c.CAFile = caFile; return c }
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{"GET", bobPath, nil, 200, ""},
		{"GET", "/api/usage/" + bob, nil, 200, ""},
		{"PATCH", bobPath, admin.UpdateUserRequest{DisplayName: ptr("Bob")}, 200, ""},
		{"GET", "/api/queue/" + bobs, nil, 200, ""},
		{"POST", "/api/queue/" + bobs + "/retry", nil, 200, ""},
		{"GET", alicePath, nil, 403, "only its own user, not " + alice},
		{"GET", "/api/usage/" + alice, nil, 403, "only its own user"},
		{"PATCH", alicePath, admin.UpdateUserRequest{DisplayName: ptr("Eve")}, 403, "only its own user"},
		{"PUT", alicePath + "/smarthost", admin.OwnSmarthostRequest{ConnectionSettings: conn}, 403, "only its own user"},
		{"DELETE", alicePath + "/smarthost", nil, 403, "only its own user"},
		{"PATCH", bobPath, admin.UpdateUserRequest{AllowFrom: &[]string{"example.org"}}, 403, "only an operator may set allow_from"},
		{"PATCH", bobPath, admin.UpdateUserRequest{SPFPolicy: ptr("off")}, 403, "only an operator may set spf_policy"},
		{"PUT", bobPath + "/limits", admin.LimitsRequest{PerDay: ptr(9999)}, 403, "only an operator"},
		{"DELETE", bobPath + "/limits", nil, 403, "only an operator"},
		{"PUT", bobPath + "/password", admin.PasswordRequest{Password: "a new password 123"}, 403, "only an operator"},
		{"DELETE", bobPath, nil, 403, "only an operator"},
		{"GET", "/api/users", nil, 403, "only an operator"},
		{"POST", "/api/users", admin.CreateUserRequest{Name: "eve@example.com", Password: "a password 1234"}, 403, "only an operator"},
		{"GET", "/api/usage", nil, 403, "only an operator"},
		{"GET", "/api/queue-stats", nil, 403, "only an operator"},
		{"POST", "/api/queue-flush", nil, 403, "only an operator"},
		{"POST", "/api/routes", admin.RouteRequest{Users: []string{bob}, Smarthost: "sg"}, 403, "only an operator"},
		{"GET", "/api/smarthosts", nil, 403, "only an operator"},
		{"POST", "/api/smarthosts", r.SmarthostRequest("mine"), 403, "only an operator"},
		{"PUT", "/api/smarthosts/sg", admin.SmarthostUpdateRequest{Host: ptr("smtp.example.com")}, 403, "only an operator"},
		{"DELETE", "/api/smarthosts/sg", nil, 403, "only an operator"},
		{"POST", "/api/smarthosts/sg/test", nil, 403, "only an operator"},
		{"POST", "/api/key-rotate", nil, 403, "only an operator"},
		{"PUT", bobPath + "/smarthost", admin.OwnSmarthostRequest{ConnectionSettings: withCA("/etc/shadow")}, 403, "only an operator may set ca_file"},
		{"PUT", bobPath + "/smarthost", admin.OwnSmarthostRequest{ConnectionSettings: conn, SPFPolicy: "off"}, 403, "only an operator may set spf"},
		{"POST", "/api/connection-test", admin.ConnectionTestRequest{ConnectionSettings: conn, User: alice}, 403, "only its own stored password"},
		{"POST", "/api/connection-test", admin.ConnectionTestRequest{ConnectionSettings: conn, Smarthost: "sg"}, 403, "only an operator may set smarthost"},
		{"POST", "/api/connection-test", admin.ConnectionTestRequest{ConnectionSettings: withCA(r.CAFile)}, 403, "only an operator may set ca_file"},
		{"GET", "/api/queue/" + alices, nil, 404, "no such message"},
		{"POST", "/api/queue/" + alices + "/retry", nil, 404, "no such message"},
		{"POST", "/api/queue/" + alices + "/bounce", nil, 404, "no such message"},
		{"DELETE", "/api/queue/" + alices, nil, 404, "no such message"},
	} {
		code, body := actingCall(t, r, bob, c.method, c.path, c.body)
		if code != c.status || !strings.Contains(errorOf(body), c.want) {
			t.Errorf("%s %s as %s: %d %s; want %d with %q", c.method, c.path, bob, code, body, c.status, c.want)
		}
	}
	// Nothing refused changed anything.
	if d, _ := r.Client.User(bob); d.DisplayName != "Bob" || len(d.AllowFrom) != 0 || d.Limits.Overridden || d.Route != "default" {
		t.Fatalf("bob after the refusals: %+v", d)
	}
	if _, err := r.Queue.Get(alices); err != nil {
		t.Fatalf("alice's message: %v", err)
	}
	// The queue lists only the sender's own messages.
	code, body := actingCall(t, r, bob, "GET", "/api/queue", nil)
	var msgs []queue.Message
	decode(t, body, &msgs)
	if code != 200 || len(msgs) != 1 || msgs[0].ID != bobs {
		t.Fatalf("bob's queue: %d %s", code, body)
	}
}

func ptr[T any](v T) *T { return &v }
