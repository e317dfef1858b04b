package admin

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"outbound/auth"
	"outbound/internal/testutil"
	"outbound/quota"
	"outbound/smarthost"
)

const shToken = "test-token-0123456789"

// shEnv is an admin API over real stores in a temporary bbolt file, with
// a STARTTLS upstream whose certificate comes from a test CA.
type shEnv struct {
	t      *testing.T
	srv    *httptest.Server
	users  *auth.Store
	hosts  *smarthost.Store
	up     *testutil.Upstream
	caFile string
}

const (
	shUpUser = "apikey"
	shUpPass = "SG.upstream-secret-xyz789"
)

func newSHEnv(t *testing.T) *shEnv {
	t.Helper()
	db := testutil.OpenDB(t)
	users, err := auth.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	users.SetHashCost(4)
	q, err := quota.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hosts, err := smarthost.Open(db, filepath.Join(dir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca := testutil.NewCA(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS:      &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}},
		Username: shUpUser, Password: shUpPass,
	})
	h := Handler(Options{Users: users, Quota: q, Routes: newRouter(t, hosts), Token: shToken,
		Smarthosts: hosts, LocalName: "relay.test", ConnectionTestTimeout: 2 * time.Second})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &shEnv{t: t, srv: srv, users: users, hosts: hosts, up: up,
		caFile: testutil.WriteFile(t, dir, "ca.pem", ca.PEM)}
}

// call sends body (a value or a raw string) and decodes the answer into
// out; it returns the status and the raw answer.
func (e *shEnv) call(method, path, token string, body, out any) (int, string) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		r = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(data, out)
	}
	return resp.StatusCode, string(data)
}

func (e *shEnv) good(name string) SmarthostRequest {
	return SmarthostRequest{Name: name, Host: e.up.Host, Port: e.up.Port, TLS: "starttls",
		Username: shUpUser, Password: shUpPass, CAFile: e.caFile, SPFInclude: "sendgrid.net"}
}

func (e *shEnv) mustAdd(name string) {
	e.t.Helper()
	if code, body := e.call("POST", "/api/smarthosts", shToken, e.good(name), nil); code != http.StatusCreated {
		e.t.Fatalf("add %s: %d %s", name, code, body)
	}
}

func (e *shEnv) addUsers(names ...string) {
	e.t.Helper()
	for _, n := range names {
		if _, err := e.users.Add(n, "user password 1", nil); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *shEnv) routeOf(name string) string {
	e.t.Helper()
	u, err := e.users.Get(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.Route
}

func TestSmarthostAddTestsConnectionAndMasksPassword(t *testing.T) {
	e := newSHEnv(t)
	var res SmarthostResult
	code, body := e.call("POST", "/api/smarthosts", shToken, e.good("sg"), &res)
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
		code, body := e.call(method, path, shToken, nil, nil)
		if code != http.StatusOK || strings.Contains(body, shUpPass) || !strings.Contains(body, "****xyz789") {
			t.Fatalf("%s %s: %d %s", method, path, code, body)
		}
	}
	if p, err := e.hosts.Password("sg"); err != nil || p != shUpPass {
		t.Fatalf("stored password: %v", err)
	}
}

func TestSmarthostAddWithPresetFillsSettings(t *testing.T) {
	e := newSHEnv(t)
	// The preset's host is unreachable from the test: force the save.
	var res SmarthostResult
	code, body := e.call("POST", "/api/smarthosts", shToken,
		SmarthostRequest{Name: "sg", Preset: "sendgrid", Password: "SG.key-0123456789", Force: true}, &res)
	if code != http.StatusCreated {
		t.Fatalf("%d %s", code, body)
	}
	v := res.Smarthost
	if v.Host != "smtp.sendgrid.net" || v.Username != "apikey" || v.SPFInclude != "sendgrid.net" || v.Preset != "sendgrid" {
		t.Fatalf("preset not applied: %+v", v)
	}
}

func TestSmarthostAddRefusesFailingConnectionUnlessForced(t *testing.T) {
	e := newSHEnv(t)
	req := e.good("sg")
	req.Password = "wrong-password-000000"
	var res SmarthostResult
	code, body := e.call("POST", "/api/smarthosts", shToken, req, &res)
	if code != http.StatusUnprocessableEntity || res.Saved || res.Test == nil || res.Test.Failed().Name != "auth" ||
		!strings.Contains(res.Error, "failed at step auth") || !strings.Contains(res.Error, "username or password") {
		t.Fatalf("failing add: %d %s", code, body)
	}
	if _, err := e.hosts.Get("sg"); err == nil {
		t.Fatal("a failing smarthost was saved")
	}
	req.Force = true
	if code, body := e.call("POST", "/api/smarthosts", shToken, req, &res); code != http.StatusCreated || !res.Saved || res.Test.OK {
		t.Fatalf("forced add: %d %s", code, body)
	}
	// Updating to the right password passes the test and is saved.
	pw := shUpPass
	if code, body := e.call("PUT", "/api/smarthosts/sg", shToken, SmarthostUpdateRequest{Password: &pw}, &res); code != http.StatusOK || !res.Test.OK {
		t.Fatalf("update: %d %s", code, body)
	}
	// A failing update is refused and changes nothing. (A new port needs
	// the password again: TestSmarthostMoveNeedsThePasswordAgain.)
	port := 1
	if code, body := e.call("PUT", "/api/smarthosts/sg", shToken, SmarthostUpdateRequest{Port: &port, Password: &pw}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("failing update: %d %s", code, body)
	}
	if h, _ := e.hosts.Get("sg"); h.Port != e.up.Port {
		t.Fatalf("failing update changed the port to %d", h.Port)
	}
}

func TestSmarthostBadInput(t *testing.T) {
	e := newSHEnv(t)
	e.mustAdd("sg")
	remote := e.good("x")
	remote.Host, remote.TLS = "smtp.example.com", "none"
	noPass := e.good("y")
	noPass.Password = ""
	for _, c := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		want   string
	}{
		{"unknown field", "POST", "/api/smarthosts", `{"name":"x","pasword":"p"}`, 400, "unknown field"},
		{"unknown preset", "POST", "/api/smarthosts", SmarthostRequest{Name: "x", Preset: "nope"}, 400, "valid presets"},
		{"tls none remote", "POST", "/api/smarthosts", remote, 400, "loopback"},
		{"no password", "POST", "/api/smarthosts", noPass, 400, "no password"},
		{"bad name", "POST", "/api/smarthosts", SmarthostRequest{Name: "a b", Host: "h.example", Port: 587, TLS: "starttls"}, 400, "letters, digits"},
		{"reserved name", "POST", "/api/smarthosts", SmarthostRequest{Name: "default", Host: "h.example", Port: 587, TLS: "starttls"}, 400, "default route"},
		{"duplicate", "POST", "/api/smarthosts", e.good("sg"), 409, "already exists"},
		{"show unknown", "GET", "/api/smarthosts/nope", nil, 404, "no such smarthost"},
		{"test unknown", "POST", "/api/smarthosts/nope/test", nil, 404, "no such smarthost"},
		{"delete unknown", "DELETE", "/api/smarthosts/nope", nil, 404, "no such smarthost"},
		{"route to unknown", "POST", "/api/routes", RouteRequest{Users: []string{"a"}, Smarthost: "nope"}, 404, "no such smarthost"},
		{"route both targets", "POST", "/api/routes", RouteRequest{Users: []string{"a"}, Smarthost: "sg", Default: true}, 400, "either"},
		{"route no users", "POST", "/api/routes", RouteRequest{Smarthost: "sg"}, 400, "either"},
		{"bad spf policy", "POST", "/api/smarthosts", func() SmarthostRequest { r := e.good("z"); r.SPFPolicy = "strict"; return r }(), 400, "off, warn, enforce"},
	} {
		code, body := e.call(c.method, c.path, shToken, c.body, nil)
		var eb struct {
			Error string `json:"error"`
		}
		json.Unmarshal([]byte(body), &eb)
		if code != c.status || !strings.Contains(eb.Error, c.want) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, code, body, c.status, c.want)
		}
	}
}

func TestSmarthostEndpointsNeedTheToken(t *testing.T) {
	e := newSHEnv(t)
	for _, token := range []string{"", "wrong"} {
		for _, ep := range [][2]string{{"GET", "/api/smarthosts"}, {"POST", "/api/smarthosts"}, {"GET", "/api/smarthosts/sg"},
			{"PUT", "/api/smarthosts/sg"}, {"DELETE", "/api/smarthosts/sg"}, {"POST", "/api/smarthosts/sg/test"}, {"POST", "/api/routes"}, {"POST", "/api/key-rotate"}} {
			if code, _ := e.call(ep[0], ep[1], token, nil, nil); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", ep[0], ep[1], token, code)
			}
		}
	}
}

func TestSmarthostDeleteRefusedWhileInUse(t *testing.T) {
	e := newSHEnv(t)
	e.mustAdd("sg")
	e.addUsers("app@example.com")
	if code, body := e.call("POST", "/api/routes", shToken, RouteRequest{Users: []string{"app@example.com"}, Smarthost: "sg"}, nil); code != 200 {
		t.Fatalf("route: %d %s", code, body)
	}
	code, body := e.call("DELETE", "/api/smarthosts/sg", shToken, nil, nil)
	if code != http.StatusConflict || !strings.Contains(body, "app@example.com") || !strings.Contains(body, "user route --from sg") {
		t.Fatalf("delete in use: %d %s", code, body)
	}
	e.call("POST", "/api/routes", shToken, RouteRequest{Users: []string{"app@example.com"}, Default: true}, nil)
	if code, body := e.call("DELETE", "/api/smarthosts/sg", shToken, nil, nil); code != 200 {
		t.Fatalf("delete unused: %d %s", code, body)
	}
}

// Routing many users is one transaction: one unknown name leaves every
// user as it was.
func TestBulkRouteIsAtomic(t *testing.T) {
	e := newSHEnv(t)
	e.mustAdd("sg")
	e.mustAdd("other")
	e.addUsers("a@example.com", "b@example.com", "c@example.com")
	code, body := e.call("POST", "/api/routes", shToken,
		RouteRequest{Users: []string{"a@example.com", "b@example.com", "nobody@example.com"}, Smarthost: "sg"}, nil)
	if code != http.StatusNotFound || !strings.Contains(body, "nobody@example.com") {
		t.Fatalf("route with an unknown user: %d %s", code, body)
	}
	for _, u := range []string{"a@example.com", "b@example.com"} {
		if r := e.routeOf(u); r != "" {
			t.Fatalf("%s moved to %q by a failed bulk route", u, r)
		}
	}
	var res RouteResult
	if code, body := e.call("POST", "/api/routes", shToken, RouteRequest{Users: []string{"a@example.com", "b@example.com"}, Smarthost: "sg"}, &res); code != 200 || len(res.Users) != 2 || res.Users[0].PerDay != 500 {
		t.Fatalf("route: %d %s", code, body)
	}
	// Every user of sg to other, in one call.
	if code, body := e.call("POST", "/api/routes", shToken, RouteRequest{From: "sg", Smarthost: "other"}, &res); code != 200 || len(res.Users) != 2 || res.Route != "other" {
		t.Fatalf("route --from: %d %s", code, body)
	}
	if e.routeOf("a@example.com") != "other" || e.routeOf("b@example.com") != "other" || e.routeOf("c@example.com") != "" {
		t.Fatal("route --from moved the wrong users")
	}
	// Back to the default route, and its strict limits.
	if code, body := e.call("POST", "/api/routes", shToken, RouteRequest{Users: []string{"a@example.com"}, Default: true}, &res); code != 200 || res.Route != "default" || res.Users[0].PerDay != 2 {
		t.Fatalf("route --default: %d %s", code, body)
	}
	var users []UserView
	e.call("GET", "/api/users", shToken, nil, &users)
	if users[0].Route != "default" || users[1].Route != "other" {
		t.Fatalf("users: %+v", users)
	}
}

func TestKeyRotateKeepsPasswordsUsable(t *testing.T) {
	e := newSHEnv(t)
	e.mustAdd("sg")
	var res map[string]int
	if code, body := e.call("POST", "/api/key-rotate", shToken, nil, &res); code != 200 || res["reencrypted"] != 1 {
		t.Fatalf("key rotate: %d %s", code, body)
	}
	var tr SmarthostResult
	if code, body := e.call("POST", "/api/smarthosts/sg/test", shToken, nil, &tr); code != 200 || !tr.Test.OK {
		t.Fatalf("test after rotation: %d %s", code, body)
	}
}

// The stored password is never sent to a host it was not saved for: moving
// a smarthost to another host, port or TLS mode needs the password again,
// and the connection test does not run without it.
func TestSmarthostMoveNeedsThePasswordAgain(t *testing.T) {
	e := newSHEnv(t)
	e.mustAdd("sg")
	ca := testutil.NewCA(t)
	elsewhere := testutil.StartUpstream(t, testutil.UpstreamOptions{
		TLS:      &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}},
		Username: shUpUser, Password: shUpPass,
	})
	port := elsewhere.Port
	code, body := e.call("PUT", "/api/smarthosts/sg", shToken, SmarthostUpdateRequest{Port: &port}, nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "requires its password again") {
		t.Fatalf("move without password: %d %s", code, body)
	}
	tlsMode := "implicit"
	code, body = e.call("PUT", "/api/smarthosts/sg", shToken, SmarthostUpdateRequest{TLS: &tlsMode}, nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "requires its password again") {
		t.Fatalf("TLS change without password: %d %s", code, body)
	}
	if n := elsewhere.Connections(); n != 0 {
		t.Fatalf("the other host saw %d connections: the stored password may have been offered to it", n)
	}
	h, err := e.hosts.Get("sg")
	if err != nil || h.Port != e.up.Port || h.TLS != "starttls" {
		t.Fatalf("refused updates changed the smarthost: %+v %v", h, err)
	}
	// Settings that keep the password where it was need no password.
	include := "mailgun.org"
	if code, body := e.call("PUT", "/api/smarthosts/sg", shToken, SmarthostUpdateRequest{SPFInclude: &include}, nil); code != http.StatusOK {
		t.Fatalf("update of the SPF include: %d %s", code, body)
	}
	// With the password the move is tested and saved.
	pw, caFile := shUpPass, testutil.WriteFile(t, t.TempDir(), "other.pem", ca.PEM)
	code, body = e.call("PUT", "/api/smarthosts/sg", shToken, SmarthostUpdateRequest{Port: &port, Password: &pw, CAFile: &caFile}, nil)
	if code != http.StatusOK {
		t.Fatalf("move with the password: %d %s", code, body)
	}
}

// ca_file must be a PEM file of certificates; other files are refused
// without their content reaching the answer.
func TestSmarthostCAFileMustHoldCertificates(t *testing.T) {
	e := newSHEnv(t)
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
		req := e.good("sg")
		req.CAFile = path
		code, body := e.call("POST", "/api/smarthosts", shToken, req, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, "ca_file") {
			t.Errorf("%s: %d %s", name, code, body)
		}
		if strings.Contains(body, secret) || strings.Contains(body, "VE9Q") {
			t.Errorf("%s: the file's content leaked: %s", name, body)
		}
	}
}
