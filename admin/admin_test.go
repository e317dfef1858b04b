package admin_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/queue"
)

const token = admintest.Token

// errorOf decodes the API's {"error": ...} answer.
func errorOf(body string) string {
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal([]byte(body), &e)
	return e.Error
}

// call is Rig.Call of a raw body, the answer also decoded as a JSON object.
func call(t *testing.T, r *admintest.Rig, method, path, body, tok string) (int, map[string]any, string) {
	t.Helper()
	code, raw := r.Call(t, method, path, tok, body)
	var obj map[string]any
	json.Unmarshal([]byte(raw), &obj)
	return code, obj, raw
}

// decode decodes a JSON answer into v.
func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
}

// statusOf is the HTTP status of an API error, 0 for nil or any other error.
func statusOf(err error) int {
	var e *admin.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestEveryEndpointNeedsTheToken(t *testing.T) {
	r := admintest.New(t)
	for _, ep := range [][2]string{{"GET", "/api/users"}, {"POST", "/api/users"}, {"GET", "/api/usage"}, {"GET", "/api/queue"}, {"GET", "/api/queue-stats"}, {"DELETE", "/api/users/x"}} {
		for _, tok := range []string{"", "wrong"} {
			if code, body := r.Call(t, ep[0], ep[1], tok, "{}"); code != 401 || !strings.Contains(errorOf(body), "bearer token") {
				t.Errorf("%s %s with token %q: %d %s", ep[0], ep[1], tok, code, body)
			}
		}
	}
	if code, _ := r.Call(t, "GET", "/healthz", "", nil); code != 200 {
		t.Error("healthz needs no token")
	}
}

func TestUserLifecycleOverTheAPI(t *testing.T) {
	r := admintest.New(t)
	code, raw := r.Call(t, "POST", "/api/users", token, `{"name":"alice@example.com","password":"correct horse","allow_from":["example.org"]}`)
	var u admin.UserView
	json.Unmarshal([]byte(raw), &u)
	if code != 201 || u.Name != "alice@example.com" || u.Route != "default" {
		t.Fatalf("create: %d %s", code, raw)
	}
	if strings.Contains(raw, "hash") || strings.Contains(raw, "correct horse") {
		t.Fatalf("create response shows the password or its hash: %s", raw)
	}
	c := r.Client
	if _, err := c.CreateUser(admin.CreateUserRequest{Name: "alice@example.com", Password: "correct horse"}); statusOf(err) != 409 {
		t.Errorf("duplicate user: %v, want 409", err)
	}
	if err := c.SetPassword("alice@example.com", "new password"); err != nil {
		t.Errorf("password change: %v", err)
	}
	if _, err := r.Users.Verify("alice@example.com", "new password"); err != nil {
		t.Error("new password does not work")
	}
	if err := c.DeleteUser("alice@example.com"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := c.User("alice@example.com"); statusOf(err) != 404 || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("deleted user: %v", err)
	}
}

func TestBadInputGetsAnErrorThatSaysWhatToFix(t *testing.T) {
	r := admintest.New(t)
	r.AddUsers(t, "alice@example.com")
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/api/users", `{"name":"bob@example.com","password":"short"}`, "at least 8"},
		{"POST", "/api/users", `{"name":"bob@example.com","pasword":"correct horse"}`, "unknown field"},
		{"POST", "/api/users", `not json`, "invalid JSON"},
		{"POST", "/api/users", `{"name":"bob@example.com","password":"correct horse","allow_from":["no spaces allowed"]}`, "allowed sender"},
		{"PUT", "/api/users/alice@example.com/limits", `{"per_day":20000}`, "limits.max_per_day = 10000"},
		{"PUT", "/api/users/alice@example.com/limits", `{"per_hour":-1}`, "negative"},
		{"GET", "/api/queue?status=lost", ``, "status must be"},
		{"GET", "/api/nothing", ``, "no such endpoint"},
	} {
		code, raw := r.Call(t, tc.method, tc.path, token, tc.body)
		if code < 400 || !strings.Contains(errorOf(raw), tc.want) {
			t.Errorf("%s %s %s: %d %s; want an error containing %q", tc.method, tc.path, tc.body, code, raw, tc.want)
		}
	}
}

func TestLimitsAndUsage(t *testing.T) {
	r := admintest.New(t)
	c := r.Client
	r.AddUsers(t, "alice@example.com")
	perHour, perDay := 50, 500
	u, err := c.SetLimits("alice@example.com", admin.LimitsRequest{PerHour: &perHour, PerDay: &perDay})
	if err != nil || u.PerHour != 50 || u.PerDay != 500 || !u.LimitsOverridden {
		t.Fatalf("limits set: %+v %v", u, err)
	}
	u, err = c.ClearLimits("alice@example.com")
	if err != nil || u.PerHour != 2 || u.LimitsOverridden {
		t.Fatalf("limits reset: %+v %v", u, err)
	}
	list, err := c.Usage()
	if err != nil || len(list) != 1 || list[0].User != "alice@example.com" {
		t.Fatalf("usage list: %+v %v", list, err)
	}
}

func TestQueueEndpoints(t *testing.T) {
	r := admintest.New(t)
	c := r.Client
	m := &queue.Message{From: "alice@example.com", Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := r.Queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	code, raw := r.Call(t, "GET", "/api/queue/"+m.ID, token, nil)
	var shown queue.Message
	json.Unmarshal([]byte(raw), &shown)
	if code != 200 || shown.ID != m.ID || strings.Contains(raw, "body") {
		t.Fatalf("show: %d %s", code, raw)
	}
	if st, err := c.QueueStats(); err != nil || st.Pending != 1 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	if err := c.Retry(m.ID); err != nil {
		t.Errorf("retry: %v", err)
	}
	if err := c.Retry("nonexistent"); statusOf(err) != 404 {
		t.Errorf("retry of an unknown message: %v, want 404", err)
	}
	if res, err := c.FlushQueue(""); err != nil || res.Flushed != 1 {
		t.Errorf("flush: %+v %v", res, err)
	}
	if err := c.DeleteMessage(m.ID); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := c.Message(m.ID); statusOf(err) != 404 {
		t.Errorf("deleted message still shown: %v", err)
	}
}

// The operator's bounce fails every queued recipient of a pending message
// and queues the sender's notification.
func TestQueueBounce(t *testing.T) {
	r := admintest.New(t)
	m := &queue.Message{From: "alice@example.com", User: "alice@example.com",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := r.Queue.Add(m, []byte("From: alice@example.com\r\nSubject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Bounce(m.ID); err != nil {
		t.Fatalf("bounce: %v", err)
	}
	got, err := r.Client.Message(m.ID)
	if err != nil || got.Recipients[0].Status != queue.Failed || !strings.Contains(got.Recipients[0].Reply, "bounced by the relay's operator") {
		t.Fatalf("after bounce: %+v %v", got, err)
	}
	if st, err := r.Client.QueueStats(); err != nil || st.Notifications != 1 {
		t.Fatalf("the sender's notification is not queued: %+v %v", st, err)
	}
	if err := r.Client.Bounce(m.ID); err == nil {
		t.Fatal("a finished message was bounced again")
	}
}
