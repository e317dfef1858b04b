package admin_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/queue"
)

// Every method of the client reaches its endpoint (a wrong path would get
// the API's "no such endpoint") and decodes the answer into the API's type.
func TestClientReachesEveryEndpoint(t *testing.T) {
	r := admintest.New(t)
	c := r.Client
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("health", c.Health())

	const name = "app@example.com"
	u, err := c.CreateUser(admin.CreateUserRequest{Name: name, Password: "correct horse", AllowFrom: []string{"example.org"}})
	must("create user", err)
	if u.Name != name || u.Route != "default" || strings.Join(u.AllowFrom, ",") != "example.org" {
		t.Errorf("created %+v", u)
	}
	users, err := c.Users()
	must("users", err)
	if len(users) != 1 || users[0].Name != name {
		t.Errorf("users %+v", users)
	}
	display := "App"
	d, err := c.UpdateUser(name, admin.UpdateUserRequest{DisplayName: &display})
	must("update user", err)
	if d.DisplayName != "App" {
		t.Errorf("updated %+v", d)
	}
	d, err = c.User(name)
	must("user", err)
	if d.Name != name || d.DisplayName != "App" || d.Limits.PerHour != 2 {
		t.Errorf("user %+v", d)
	}
	must("set password", c.SetPassword(name, "another long one"))
	if _, err := r.Users.Verify(name, "another long one"); err != nil {
		t.Errorf("the new password does not log in: %v", err)
	}
	perDay := 20
	usage, err := c.SetLimits(name, admin.LimitsRequest{PerDay: &perDay})
	must("set limits", err)
	if usage.User != name || usage.PerDay != 20 || usage.PerHour != 2 || !usage.LimitsOverridden {
		t.Errorf("limits set: %+v", usage)
	}
	usage, err = c.UserUsage(name)
	must("user usage", err)
	if usage.PerDay != 20 {
		t.Errorf("usage %+v", usage)
	}
	usage, err = c.ClearLimits(name)
	must("clear limits", err)
	if usage.PerDay != 2 || usage.LimitsOverridden {
		t.Errorf("limits cleared: %+v", usage)
	}
	all, err := c.Usage()
	must("usage", err)
	if len(all) != 1 || all[0].User != name {
		t.Errorf("usage %+v", all)
	}

	res, err := c.AddSmarthost(r.SmarthostRequest("sg"))
	must("add smarthost", err)
	if !res.Saved || !res.Test.OK || res.Smarthost.Password != "****xyz789" {
		t.Errorf("added %+v", res)
	}
	include := "mailgun.org"
	res, err = c.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{SPFInclude: &include})
	must("update smarthost", err)
	if res.Smarthost.SPFInclude != "mailgun.org" {
		t.Errorf("updated %+v", res.Smarthost)
	}
	res, err = c.TestSmarthost("sg")
	must("test smarthost", err)
	if !res.Test.OK {
		t.Errorf("test %+v", res.Test)
	}
	routed, err := c.SetRoutes(admin.RouteRequest{Users: []string{name}, Smarthost: "sg"})
	must("set routes", err)
	if routed.Route != "sg" || len(routed.Users) != 1 || routed.Users[0].PerDay != 500 {
		t.Errorf("routed %+v", routed)
	}
	h, err := c.Smarthost("sg")
	must("smarthost", err)
	if h.Name != "sg" || strings.Join(h.Users, ",") != name {
		t.Errorf("smarthost %+v", h)
	}
	hosts, err := c.Smarthosts()
	must("smarthosts", err)
	if len(hosts) != 1 || hosts[0].Name != "sg" {
		t.Errorf("smarthosts %+v", hosts)
	}
	rot, err := c.RotateKey()
	must("rotate key", err)
	if rot.Reencrypted != 1 {
		t.Errorf("rotated %+v", rot)
	}
	_, err = c.SetRoutes(admin.RouteRequest{From: "sg", Default: true})
	must("route back", err)
	must("delete smarthost", c.DeleteSmarthost("sg"))

	m1 := &queue.Message{From: name, User: name, Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	m2 := &queue.Message{From: name, User: name, Recipients: []queue.Recipient{{Addr: "carol@example.net", Status: queue.Queued}}}
	for _, m := range []*queue.Message{m1, m2} {
		if err := r.Queue.Add(m, []byte("From: app@example.com\r\nSubject: x\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := c.Messages(admin.QueueFilter{Status: "queued"})
	must("messages", err)
	if len(msgs) != 2 {
		t.Errorf("messages %+v", msgs)
	}
	m, err := c.Message(m1.ID)
	must("message", err)
	if m.ID != m1.ID || m.Recipients[0].Addr != "bob@example.net" {
		t.Errorf("message %+v", m)
	}
	must("retry", c.Retry(m1.ID))
	flushed, err := c.FlushQueue("default")
	must("flush", err)
	if flushed.Flushed != 2 {
		t.Errorf("flushed %+v", flushed)
	}
	must("bounce", c.Bounce(m1.ID))
	must("delete message", c.DeleteMessage(m2.ID))
	st, err := c.QueueStats()
	must("queue stats", err)
	// m1 failed, and its sender's notification waits.
	if st.Recipients["failed"] != 1 || st.Notifications != 1 {
		t.Errorf("stats %+v", st)
	}
	must("delete user", c.DeleteUser(name))
}

// The client's errors carry the HTTP status and the API's message, which
// is the whole text of the error, as the CLI prints it.
func TestClientErrorsCarryStatusAndMessage(t *testing.T) {
	r := admintest.New(t)
	var e *admin.Error

	_, err := r.Client.User("ghost@example.com")
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Message != err.Error() || err.Error() != "no such user: ghost@example.com" {
		t.Errorf("unknown user: %#v", err)
	}
	_, err = admin.NewClient(r.URL, "wrong", nil).Users()
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "missing or wrong bearer token") {
		t.Errorf("wrong token: %#v", err)
	}

	// An answer without the API's JSON (a proxy's, say) is named by its status.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer proxy.Close()
	_, err = admin.NewClient(proxy.URL, admintest.Token, nil).Users()
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || err.Error() != "admin API: 502 Bad Gateway" {
		t.Errorf("error without JSON: %#v", err)
	}

	// No server at all: a transport error that says what to check.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	err = admin.NewClient(gone.URL, admintest.Token, nil).Health()
	if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "cannot reach the relay's admin API at "+gone.URL+": is `outbound serve` running?") {
		t.Errorf("no server: %v", err)
	}
}
