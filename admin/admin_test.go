package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"outbound/auth"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/quota"
	"outbound/route"
	"outbound/smarthost"
	"outbound/spf"
)

const token = "test-token"

type apiRig struct {
	srv   *httptest.Server
	users *auth.Store
	queue *queue.Queue
}

func newAPI(t *testing.T) *apiRig {
	t.Helper()
	db := testutil.OpenDB(t)
	users, err := auth.NewStore(db)
	if err != nil {
		t.Fatal(err)
	}
	users.SetHashCost(4)
	q, _ := queue.Open(db, nil)
	qs, _ := quota.Open(db, nil)
	h := Handler(Options{Users: users, Queue: q, Quota: qs, Routes: newRouter(t, nil), Token: token})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &apiRig{srv: srv, users: users, queue: q}
}

// newRouter is the route.Router of the tests: a default route with an SPF
// include (so SPF policies are not forced "off"), limits of 2/2 there and
// 50/500 on a smarthost, a ceiling of 10000.
func newRouter(t *testing.T, hosts *smarthost.Store) *route.Router {
	t.Helper()
	opts := route.Options{
		Default: route.Default{Host: "smtp.example.net", Port: 587, TLSMode: "starttls",
			SPFInclude: "_spf.example.net", SPFPolicy: spf.PolicyWarn},
		DefaultLimits: quota.Limits{PerHour: 2, PerDay: 2},
		OwnLimits:     quota.Limits{PerHour: 50, PerDay: 500},
		MaxPerDay:     10000,
	}
	if hosts != nil {
		opts.Smarthosts = hosts
	}
	r, err := route.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// call returns the status and the decoded JSON body.
func (r *apiRig) call(t *testing.T, method, path, body, tok string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, r.srv.URL+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var obj map[string]any
	json.Unmarshal(raw, &obj)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, obj, string(raw)
}

func TestEveryEndpointNeedsTheToken(t *testing.T) {
	r := newAPI(t)
	for _, ep := range [][2]string{{"GET", "/api/users"}, {"POST", "/api/users"}, {"GET", "/api/usage"}, {"GET", "/api/queue"}, {"GET", "/api/queue-stats"}, {"DELETE", "/api/users/x"}} {
		for _, tok := range []string{"", "wrong"} {
			if code, obj, _ := r.call(t, ep[0], ep[1], "{}", tok); code != 401 || !strings.Contains(obj["error"].(string), "bearer token") {
				t.Errorf("%s %s with token %q: %d %v", ep[0], ep[1], tok, code, obj)
			}
		}
	}
	if code, _, _ := r.call(t, "GET", "/healthz", "", ""); code != 200 {
		t.Error("healthz needs no token")
	}
}

func TestUserLifecycleOverTheAPI(t *testing.T) {
	r := newAPI(t)
	code, obj, raw := r.call(t, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse","allow_from":["example.org"]}`, token)
	if code != 201 || obj["name"] != "alice@example.com" || obj["route"] != "default" {
		t.Fatalf("create: %d %s", code, raw)
	}
	if strings.Contains(raw, "hash") || strings.Contains(raw, "correct horse") {
		t.Fatalf("create response shows the password or its hash: %s", raw)
	}
	if code, _, _ := r.call(t, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse"}`, token); code != 409 {
		t.Errorf("duplicate user: %d, want 409", code)
	}
	if code, obj, _ := r.call(t, "PUT", "/api/users/alice@example.com/password", `{"password":"new password"}`, token); code != 200 {
		t.Errorf("password change: %d %v", code, obj)
	}
	if _, err := r.users.Verify("alice@example.com", "new password"); err != nil {
		t.Error("new password does not work")
	}
	if code, _, _ := r.call(t, "DELETE", "/api/users/alice@example.com", "", token); code != 200 {
		t.Errorf("delete: %d", code)
	}
	if code, obj, _ := r.call(t, "GET", "/api/users/alice@example.com", "", token); code != 404 || !strings.Contains(obj["error"].(string), "no such user") {
		t.Errorf("deleted user: %d %v", code, obj)
	}
}

func TestBadInputGetsAnErrorThatSaysWhatToFix(t *testing.T) {
	r := newAPI(t)
	r.call(t, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse"}`, token)
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
		code, obj, raw := r.call(t, tc.method, tc.path, tc.body, token)
		msg, _ := obj["error"].(string)
		if code < 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s %s: %d %s; want an error containing %q", tc.method, tc.path, tc.body, code, raw, tc.want)
		}
	}
}

func TestLimitsAndUsage(t *testing.T) {
	r := newAPI(t)
	r.call(t, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse"}`, token)
	code, obj, raw := r.call(t, "PUT", "/api/users/alice@example.com/limits", `{"per_hour":50,"per_day":500}`, token)
	if code != 200 || obj["per_hour"] != 50.0 || obj["per_day"] != 500.0 || obj["limits_overridden"] != true {
		t.Fatalf("limits set: %d %s", code, raw)
	}
	code, obj, raw = r.call(t, "DELETE", "/api/users/alice@example.com/limits", "", token)
	if code != 200 || obj["per_hour"] != 2.0 || obj["limits_overridden"] != false {
		t.Fatalf("limits reset: %d %s", code, raw)
	}
	code, _, raw = r.call(t, "GET", "/api/usage", "", token)
	if code != 200 || !strings.Contains(raw, `"user": "alice@example.com"`) {
		t.Fatalf("usage list: %d %s", code, raw)
	}
}

func TestQueueEndpoints(t *testing.T) {
	r := newAPI(t)
	m := &queue.Message{From: "alice@example.com", Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := r.queue.Add(m, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	code, obj, raw := r.call(t, "GET", "/api/queue/"+m.ID, "", token)
	if code != 200 || obj["id"] != m.ID || strings.Contains(raw, "body") {
		t.Fatalf("show: %d %s", code, raw)
	}
	code, obj, _ = r.call(t, "GET", "/api/queue-stats", "", token)
	if code != 200 || obj["pending"] != 1.0 {
		t.Fatalf("stats: %d %v", code, obj)
	}
	if code, _, _ := r.call(t, "POST", "/api/queue/"+m.ID+"/retry", "", token); code != 200 {
		t.Errorf("retry: %d", code)
	}
	if code, _, _ := r.call(t, "POST", "/api/queue/nonexistent/retry", "", token); code != 404 {
		t.Errorf("retry of an unknown message: %d, want 404", code)
	}
	if code, obj, _ := r.call(t, "POST", "/api/queue-flush", "", token); code != 200 || obj["flushed"] != 1.0 {
		t.Errorf("flush: %d %v", code, obj)
	}
	if code, _, _ := r.call(t, "DELETE", "/api/queue/"+m.ID, "", token); code != 200 {
		t.Errorf("delete: %d", code)
	}
	if code, _, _ := r.call(t, "GET", "/api/queue/"+m.ID, "", token); code != 404 {
		t.Errorf("deleted message still shown: %d", code)
	}
}
