package admin_test

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
)

const (
	shUpUser = admintest.UpstreamUser
	shUpPass = admintest.UpstreamPassword
)

// routeOf is the route stored for user name ("" for the default route).
func routeOf(t *testing.T, r *admintest.Rig, name string) string {
	t.Helper()
	u, err := r.Users.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return u.Route
}

func TestSmarthostAddTestsConnectionAndMasksPassword(t *testing.T) {
	e := admintest.New(t)
	var res admin.SmarthostResult
	code, body := e.Call(t, "POST", "/api/smarthosts", admintest.Token, e.SmarthostRequest("sg"))
	decode(t, body, &res)
	if code != http.StatusCreated || !res.Saved || res.Test == nil || !res.Test.OK {
		t.Fatalf("add: %d %s", code, body)
	}
	if strings.Contains(body, shUpPass) || res.Smarthost.Password != "****xyz789" {
		t.Fatalf("the answer shows the password unmasked: %s", body)
	}
	for _, path := range []string{"/api/smarthosts", "/api/smarthosts/sg", "/api/smarthosts/sg/test"} {
		method := "GET"
		if strings.HasSuffix(path, "/test") {
			method = "POST"
		}
		code, body := e.Call(t, method, path, admintest.Token, nil)
		if code != http.StatusOK || strings.Contains(body, shUpPass) || !strings.Contains(body, "****xyz789") {
			t.Fatalf("%s %s: %d %s", method, path, code, body)
		}
	}
	if p, err := e.Smarthosts.Password("sg"); err != nil || p != shUpPass {
		t.Fatalf("stored password: %v", err)
	}
}

func TestSmarthostAddWithPresetFillsSettings(t *testing.T) {
	e := admintest.New(t)
	// The preset's host is unreachable from the test: force the save.
	res, err := e.Client.AddSmarthost(admin.SmarthostRequest{Name: "sg",
		ConnectionSettings: admin.ConnectionSettings{Preset: "sendgrid", Password: "SG.key-0123456789"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	v := res.Smarthost
	if v.Host != "smtp.sendgrid.net" || v.Username != "apikey" || v.SPFInclude != "sendgrid.net" || v.Preset != "sendgrid" {
		t.Fatalf("preset not applied: %+v", v)
	}
}

func TestSmarthostAddRefusesFailingConnectionUnlessForced(t *testing.T) {
	e := admintest.New(t)
	c := e.Client
	req := e.SmarthostRequest("sg")
	req.Password = "wrong-password-000000"
	// A refused save is an error of status 422 and a result with the report.
	res, err := c.AddSmarthost(req)
	if statusOf(err) != http.StatusUnprocessableEntity || err.Error() != res.Error || res.Saved || res.Test == nil || res.Test.Failed().Name != "auth" ||
		!strings.Contains(res.Error, "failed at step auth") || !strings.Contains(res.Error, "username or password") {
		t.Fatalf("failing add: %v %+v", err, res)
	}
	if _, err := e.Smarthosts.Get("sg"); err == nil {
		t.Fatal("a failing smarthost was saved")
	}
	req.Force = true
	if res, err := c.AddSmarthost(req); err != nil || !res.Saved || res.Test.OK {
		t.Fatalf("forced add: %v %+v", err, res)
	}
	// Updating to the right password passes the test and is saved.
	pw := shUpPass
	if res, err := c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Password: &pw}); err != nil || !res.Test.OK {
		t.Fatalf("update: %v %+v", err, res)
	}
	// A failing update is refused and changes nothing. (A new port needs
	// the password again: TestSmarthostMoveNeedsThePasswordAgain.)
	port := 1
	if res, err := c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Port: &port, Password: &pw}); statusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("failing update: %v %+v", err, res)
	}
	if h, _ := e.Smarthosts.Get("sg"); h.Port != e.Upstream.Port {
		t.Fatalf("failing update changed the port to %d", h.Port)
	}
}

func TestSmarthostBadInput(t *testing.T) {
	e := admintest.New(t)
	e.AddSmarthost(t, "sg")
	remote := e.SmarthostRequest("x")
	remote.Host, remote.TLS = "smtp.example.com", "none"
	noPass := e.SmarthostRequest("y")
	noPass.Password = ""
	conn := admin.ConnectionSettings{Host: "h.example", Port: 587, TLS: "starttls"}
	for _, c := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		want   string
	}{
		{"unknown field", "POST", "/api/smarthosts", `{"name":"x","pasword":"p"}`, 400, "unknown field"},
		{"unknown preset", "POST", "/api/smarthosts", admin.SmarthostRequest{Name: "x", ConnectionSettings: admin.ConnectionSettings{Preset: "nope"}}, 400, "valid presets"},
		{"tls none remote", "POST", "/api/smarthosts", remote, 400, "loopback"},
		{"no password", "POST", "/api/smarthosts", noPass, 400, "no password"},
		{"bad name", "POST", "/api/smarthosts", admin.SmarthostRequest{Name: "a b", ConnectionSettings: conn}, 400, "letters, digits"},
		{"reserved name", "POST", "/api/smarthosts", admin.SmarthostRequest{Name: "default", ConnectionSettings: conn}, 400, "default route"},
		{"duplicate", "POST", "/api/smarthosts", e.SmarthostRequest("sg"), 409, "already exists"},
		{"show unknown", "GET", "/api/smarthosts/nope", nil, 404, "no such smarthost"},
		{"test unknown", "POST", "/api/smarthosts/nope/test", nil, 404, "no such smarthost"},
		{"delete unknown", "DELETE", "/api/smarthosts/nope", nil, 404, "no such smarthost"},
		{"route to unknown", "POST", "/api/routes", admin.RouteRequest{Users: []string{"a"}, Smarthost: "nope"}, 404, "no such smarthost"},
		{"route both targets", "POST", "/api/routes", admin.RouteRequest{Users: []string{"a"}, Smarthost: "sg", Default: true}, 400, "either"},
		{"route no users", "POST", "/api/routes", admin.RouteRequest{Smarthost: "sg"}, 400, "either"},
		{"bad spf policy", "POST", "/api/smarthosts", func() admin.SmarthostRequest { r := e.SmarthostRequest("z"); r.SPFPolicy = "strict"; return r }(), 400, "off, warn, enforce"},
	} {
		code, body := e.Call(t, c.method, c.path, admintest.Token, c.body)
		if code != c.status || !strings.Contains(errorOf(body), c.want) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, code, body, c.status, c.want)
		}
	}
}

func TestSmarthostEndpointsNeedTheToken(t *testing.T) {
	e := admintest.New(t)
	for _, token := range []string{"", "wrong"} {
		for _, ep := range [][2]string{{"GET", "/api/smarthosts"}, {"POST", "/api/smarthosts"}, {"GET", "/api/smarthosts/sg"},
			{"PUT", "/api/smarthosts/sg"}, {"DELETE", "/api/smarthosts/sg"}, {"POST", "/api/smarthosts/sg/test"}, {"POST", "/api/routes"}, {"POST", "/api/key-rotate"}} {
			if code, _ := e.Call(t, ep[0], ep[1], token, nil); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", ep[0], ep[1], token, code)
			}
		}
	}
}

func TestSmarthostDeleteRefusedWhileInUse(t *testing.T) {
	e := admintest.New(t)
	c := e.Client
	e.AddSmarthost(t, "sg")
	e.AddUsers(t, "app@example.com")
	if _, err := c.SetRoutes(admin.RouteRequest{Users: []string{"app@example.com"}, Smarthost: "sg"}); err != nil {
		t.Fatalf("route: %v", err)
	}
	err := c.DeleteSmarthost("sg")
	if statusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "app@example.com") || !strings.Contains(err.Error(), "user route --from sg") {
		t.Fatalf("delete in use: %v", err)
	}
	if _, err := c.SetRoutes(admin.RouteRequest{Users: []string{"app@example.com"}, Default: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSmarthost("sg"); err != nil {
		t.Fatalf("delete unused: %v", err)
	}
}

// Routing many users is one transaction: one unknown name leaves every
// user as it was.
func TestBulkRouteIsAtomic(t *testing.T) {
	e := admintest.New(t)
	c := e.Client
	e.AddSmarthost(t, "sg")
	e.AddSmarthost(t, "other")
	e.AddUsers(t, "a@example.com", "b@example.com", "c@example.com")
	_, err := c.SetRoutes(admin.RouteRequest{Users: []string{"a@example.com", "b@example.com", "nobody@example.com"}, Smarthost: "sg"})
	if statusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), "nobody@example.com") {
		t.Fatalf("route with an unknown user: %v", err)
	}
	for _, u := range []string{"a@example.com", "b@example.com"} {
		if r := routeOf(t, e, u); r != "" {
			t.Fatalf("%s moved to %q by a failed bulk route", u, r)
		}
	}
	if res, err := c.SetRoutes(admin.RouteRequest{Users: []string{"a@example.com", "b@example.com"}, Smarthost: "sg"}); err != nil || len(res.Users) != 2 || res.Users[0].PerDay != 500 {
		t.Fatalf("route: %v %+v", err, res)
	}
	// Every user of sg to other, in one call.
	if res, err := c.SetRoutes(admin.RouteRequest{From: "sg", Smarthost: "other"}); err != nil || len(res.Users) != 2 || res.Route != "other" {
		t.Fatalf("route --from: %v %+v", err, res)
	}
	if routeOf(t, e, "a@example.com") != "other" || routeOf(t, e, "b@example.com") != "other" || routeOf(t, e, "c@example.com") != "" {
		t.Fatal("route --from moved the wrong users")
	}
	// Back to the default route, and its strict limits.
	if res, err := c.SetRoutes(admin.RouteRequest{Users: []string{"a@example.com"}, Default: true}); err != nil || res.Route != "default" || res.Users[0].PerDay != 2 {
		t.Fatalf("route --default: %v %+v", err, res)
	}
	users, err := c.Users()
	if err != nil || users[0].Route != "default" || users[1].Route != "other" {
		t.Fatalf("users: %+v %v", users, err)
	}
}

func TestKeyRotateKeepsPasswordsUsable(t *testing.T) {
	e := admintest.New(t)
	e.AddSmarthost(t, "sg")
	if res, err := e.Client.RotateKey(); err != nil || res.Reencrypted != 1 {
		t.Fatalf("key rotate: %+v %v", res, err)
	}
	if tr, err := e.Client.TestSmarthost("sg"); err != nil || !tr.Test.OK {
		t.Fatalf("test after rotation: %+v %v", tr, err)
	}
}

// The stored password is never sent to a host it was not saved for: moving
// a smarthost to another host, port or TLS mode needs the password again,
// and the connection test does not run without it.
func TestSmarthostMoveNeedsThePasswordAgain(t *testing.T) {
	e := admintest.New(t)
	c := e.Client
	e.AddSmarthost(t, "sg")
	ca := testutil.NewCA(t)
	elsewhere := testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS:      &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}},
		Username: shUpUser, Password: shUpPass,
	})
	port := elsewhere.Port
	_, err := c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Port: &port})
	if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "requires its password again") {
		t.Fatalf("move without password: %v", err)
	}
	tlsMode := "implicit"
	_, err = c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{TLS: &tlsMode})
	if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "requires its password again") {
		t.Fatalf("TLS change without password: %v", err)
	}
	// A new host name alone is the move the rule exists for: the stored
	// password must not follow the smarthost to whoever answers there.
	host := "localhost"
	_, err = c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Host: &host})
	if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "requires its password again") {
		t.Fatalf("host change without password: %v", err)
	}
	if n := elsewhere.Connections(); n != 0 {
		t.Fatalf("the other host saw %d connections: the stored password may have been offered to it", n)
	}
	h, err := e.Smarthosts.Get("sg")
	if err != nil || h.Host == "localhost" || h.Port != e.Upstream.Port || h.TLS != "starttls" {
		t.Fatalf("refused updates changed the smarthost: %+v %v", h, err)
	}
	// Settings that keep the password where it was need no password.
	include := "mailgun.org"
	if _, err := c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{SPFInclude: &include}); err != nil {
		t.Fatalf("update of the SPF include: %v", err)
	}
	// With the password the move is tested and saved.
	pw, caFile := shUpPass, testutil.WriteFile(t, t.TempDir(), "other.pem", ca.PEM)
	if _, err := c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Port: &port, Password: &pw, CAFile: &caFile}); err != nil {
		t.Fatalf("move with the password: %v", err)
	}
}

// ca_file must be a PEM file of certificates; other files are refused
// without their content reaching the answer.
func TestSmarthostCAFileMustHoldCertificates(t *testing.T) {
	e := admintest.New(t)
	dir := t.TempDir()
	secret := "TOP-SECRET-LINE"
	cases := map[string]string{
		"not PEM":  testutil.WriteFile(t, dir, "secret.txt", []byte(secret+"\n")),
		"a key":    testutil.WriteFile(t, dir, "key.pem", []byte("-----BEGIN PRIVATE KEY-----\nVE9QLVNFQ1JFVC1MSU5F\n-----END PRIVATE KEY-----\n")),
		"bad cert": testutil.WriteFile(t, dir, "bad.pem", []byte("-----BEGIN CERTIFICATE-----\nVE9QLVNFQ1JFVC1MSU5F\n-----END CERTIFICATE-----\n")),
		"a device": "/dev/zero",
		"missing":  filepath.Join(dir, "nope.pem"),
	}
	for name, path := range cases {
		req := e.SmarthostRequest("sg")
		req.CAFile = path
		code, body := e.Call(t, "POST", "/api/smarthosts", admintest.Token, req)
		if code != http.StatusBadRequest || !strings.Contains(body, "ca_file") {
			t.Errorf("%s: %d %s", name, code, body)
		}
		if strings.Contains(body, secret) || strings.Contains(body, "VE9Q") {
			t.Errorf("%s: the file's content leaked: %s", name, body)
		}
	}
}
