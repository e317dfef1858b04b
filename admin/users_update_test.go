package admin_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
)

func TestUpdateUserSenderSettings(t *testing.T) {
	r := admintest.New(t)
	call(t, r, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse","allow_from":["example.org"]}`, token)

	code, obj, raw := call(t, r, "PATCH", "/api/users/alice@example.com",
		`{"display_name":"  Zoë Example ","reply_to":"Support <help@example.com>","allow_from":["example.net","sales@example.com"]}`, token)
	if code != 200 || obj["display_name"] != "Zoë Example" || obj["reply_to"] != "Support <help@example.com>" ||
		!strings.Contains(raw, `"allow_from": [
    "example.net",
    "sales@example.com"
  ]`) || obj["name"] != "alice@example.com" {
		t.Fatalf("update: %d %s", code, raw)
	}
	u, _ := r.Users.Get("alice@example.com")
	if u.DisplayName != "Zoë Example" || u.ReplyTo != "Support <help@example.com>" || strings.Join(u.AllowFrom, ",") != "example.net,sales@example.com" {
		t.Fatalf("stored: %+v", u)
	}

	// Fields left out, or null, are unchanged.
	if code, _, raw := call(t, r, "PATCH", "/api/users/alice@example.com", `{"reply_to":"help@example.com","allow_from":null}`, token); code != 200 {
		t.Fatalf("update reply_to: %d %s", code, raw)
	}
	u, _ = r.Users.Get("alice@example.com")
	if u.DisplayName != "Zoë Example" || u.ReplyTo != "help@example.com" || len(u.AllowFrom) != 2 {
		t.Fatalf("a partial update changed other fields: %+v", u)
	}

	// Empty values clear.
	code, obj, raw = call(t, r, "PATCH", "/api/users/alice@example.com", `{"display_name":"","reply_to":"","allow_from":[]}`, token)
	if code != 200 || obj["display_name"] != "" || obj["reply_to"] != "" || !strings.Contains(raw, `"allow_from": []`) {
		t.Fatalf("clear: %d %s", code, raw)
	}
	u, _ = r.Users.Get("alice@example.com")
	if u.DisplayName != "" || u.ReplyTo != "" || u.AllowFrom != nil {
		t.Fatalf("not cleared: %+v", u)
	}
	if _, err := r.Users.Verify("alice@example.com", "correct horse"); err != nil {
		t.Fatalf("an update broke the password: %v", err)
	}
}

func TestUpdateUserBadInput(t *testing.T) {
	r := admintest.New(t)
	call(t, r, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse","allow_from":["example.org"]}`, token)
	call(t, r, "PATCH", "/api/users/alice@example.com", `{"display_name":"Alice","reply_to":"help@example.com"}`, token)
	for _, tc := range []struct {
		name, path, body string
		status           int
		want             []string
	}{
		{"unknown user", "/api/users/ghost@example.com", `{"display_name":"Ghost"}`, 404, []string{"no such user", "ghost@example.com"}},
		{"nothing to update", "/api/users/alice@example.com", `{}`, 400, []string{"nothing to update", "allow_from", "display_name", "reply_to"}},
		{"unknown field", "/api/users/alice@example.com", `{"displayname":"Alice"}`, 400, []string{"unknown field", "displayname"}},
		{"not JSON", "/api/users/alice@example.com", `display_name=Alice`, 400, []string{"invalid JSON"}},
		{"allow_from not a list", "/api/users/alice@example.com", `{"allow_from":"example.com"}`, 400, []string{"invalid JSON", "allow_from"}},
		{"bad allowed sender", "/api/users/alice@example.com", `{"allow_from":["example.com","not a domain"]}`, 400, []string{"allow_from[1]", "not a domain", "a domain like example.com"}},
		{"display name with a line break", "/api/users/alice@example.com", `{"display_name":"Alice\r\nBcc: victim@example.net"}`, 400, []string{"display_name", "line breaks"}},
		{"display name too long", "/api/users/alice@example.com", `{"display_name":"` + strings.Repeat("a", 201) + `"}`, 400, []string{"display_name", "at most 200"}},
		{"reply-to not an address", "/api/users/alice@example.com", `{"reply_to":"help"}`, 400, []string{"reply_to", "not one valid address", "help@example.com"}},
		{"reply-to two addresses", "/api/users/alice@example.com", `{"reply_to":"a@example.com, b@example.com"}`, 400, []string{"reply_to", "not one valid address"}},
		{"reply-to with a line break", "/api/users/alice@example.com", `{"reply_to":"help@example.com\nBcc: x@example.net"}`, 400, []string{"reply_to", "line breaks"}},
		// One bad field refuses the whole request.
		{"good name, bad reply-to", "/api/users/alice@example.com", `{"display_name":"Changed","reply_to":"nope"}`, 400, []string{"reply_to"}},
	} {
		code, obj, raw := call(t, r, "PATCH", tc.path, tc.body, token)
		msg, _ := obj["error"].(string)
		ok := code == tc.status
		for _, w := range tc.want {
			ok = ok && strings.Contains(msg, w)
		}
		if !ok {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, code, raw, tc.status, tc.want)
		}
	}
	u, _ := r.Users.Get("alice@example.com")
	if u.DisplayName != "Alice" || u.ReplyTo != "help@example.com" || strings.Join(u.AllowFrom, ",") != "example.org" {
		t.Fatalf("refused updates changed the user: %+v", u)
	}
}

func TestUpdateAndShowUserNeedTheToken(t *testing.T) {
	r := admintest.New(t)
	call(t, r, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse"}`, token)
	for _, tok := range []string{"", "wrong", token + "x"} {
		for _, ep := range [][3]string{
			{"PATCH", "/api/users/alice@example.com", `{"display_name":"Mallory"}`},
			{"PATCH", "/api/users/ghost@example.com", `{"display_name":"Mallory"}`},
			{"GET", "/api/users/alice@example.com", ``},
		} {
			code, obj, raw := call(t, r, ep[0], ep[1], ep[2], tok)
			if msg, _ := obj["error"].(string); code != 401 || !strings.Contains(msg, "bearer token") {
				t.Errorf("%s %s with token %q: %d %s, want 401", ep[0], ep[1], tok, code, raw)
			}
		}
	}
	if u, _ := r.Users.Get("alice@example.com"); u.DisplayName != "" {
		t.Fatalf("an unauthenticated PATCH changed the user: %+v", u)
	}
}

func TestShowUserOnTheDefaultRoute(t *testing.T) {
	r := admintest.New(t)
	call(t, r, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse","allow_from":["example.org"]}`, token)
	call(t, r, "PATCH", "/api/users/alice@example.com", `{"display_name":"Alice Example","reply_to":"help@example.com"}`, token)

	var d admin.UserDetail
	code, _, raw := call(t, r, "GET", "/api/users/alice@example.com", "", token)
	if err := json.Unmarshal([]byte(raw), &d); code != 200 || err != nil {
		t.Fatalf("show: %d %s", code, raw)
	}
	if d.Name != "alice@example.com" || d.Route != "default" || strings.Join(d.AllowFrom, ",") != "example.org" || d.Created.IsZero() ||
		d.DisplayName != "Alice Example" || d.ReplyTo != "help@example.com" {
		t.Errorf("user fields: %+v", d)
	}
	if d.Limits != (admin.UserLimits{PerHour: 2, PerDay: 2}) {
		t.Errorf("limits = %+v, want the route's 2/2, not overridden", d.Limits)
	}
	if u := d.Usage; u.User != "alice@example.com" || u.SentLastHour != 0 || u.RemainingHour != 2 || u.RemainingDay != 2 || u.NextSlot != nil {
		t.Errorf("usage = %+v", u)
	}
	if d.Smarthost != nil || strings.Contains(raw, `"smarthost"`) || strings.Contains(raw, "hash") || strings.Contains(raw, "correct horse") {
		t.Errorf("show on the default route: %s", raw)
	}

	// Own limits are shown as such.
	call(t, r, "PUT", "/api/users/alice@example.com/limits", `{"per_hour":40,"per_day":400}`, token)
	d = admin.UserDetail{}
	_, _, raw = call(t, r, "GET", "/api/users/alice@example.com", "", token)
	json.Unmarshal([]byte(raw), &d)
	if d.Limits != (admin.UserLimits{PerHour: 40, PerDay: 400, Overridden: true}) || !d.Usage.LimitsOverridden || d.Usage.RemainingDay != 400 {
		t.Errorf("after limits set: %+v %+v", d.Limits, d.Usage)
	}
}

// GET /api/users keeps its shape: the sender settings and the rest of the
// detail are only on the user's own page.
func TestListUsersIsUnchanged(t *testing.T) {
	r := admintest.New(t)
	call(t, r, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse"}`, token)
	call(t, r, "PATCH", "/api/users/alice@example.com", `{"display_name":"Alice Example"}`, token)
	_, _, raw := call(t, r, "GET", "/api/users", "", token)
	var list []map[string]any
	if err := json.Unmarshal([]byte(raw), &list); err != nil || len(list) != 1 {
		t.Fatalf("list: %v %s", err, raw)
	}
	var keys []string
	for k := range list[0] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "allow_from,created,name,route" {
		t.Fatalf("list entries have keys %v, want allow_from, created, name, route", keys)
	}
}

func TestShowUserOnASmarthost(t *testing.T) {
	e := admintest.New(t)
	c := e.Client
	e.AddSmarthost(t, "sg")
	e.AddUsers(t, "app@example.com")
	if _, err := c.SetRoutes(admin.RouteRequest{Users: []string{"app@example.com"}, Smarthost: "sg"}); err != nil {
		t.Fatalf("route: %v", err)
	}
	name := "App"
	d, err := c.UpdateUser("app@example.com", admin.UpdateUserRequest{DisplayName: &name})
	if err != nil || d.DisplayName != "App" {
		t.Fatalf("update: %+v %v", d, err)
	}
	var shown admin.UserDetail
	code, body := e.Call(t, "GET", "/api/users/app@example.com", admintest.Token, nil)
	decode(t, body, &shown)
	if code != http.StatusOK || shown.Route != "sg" || shown.Smarthost == nil {
		t.Fatalf("show: %d %s", code, body)
	}
	want := admin.UserSmarthost{SmarthostSummary: admin.SmarthostSummary{Name: "sg", Host: e.Upstream.Host, Port: e.Upstream.Port,
		TLS: "starttls", Username: shUpUser, Password: "****xyz789"}}
	if *shown.Smarthost != want {
		t.Errorf("smarthost = %+v, want %+v", *shown.Smarthost, want)
	}
	if strings.Contains(body, shUpPass) {
		t.Errorf("the user's page shows the smarthost password: %s", body)
	}
	if shown.Limits != (admin.UserLimits{PerHour: 50, PerDay: 500}) {
		t.Errorf("limits = %+v, want the smarthost route's 50/500", shown.Limits)
	}
}

// A user's own SPF policy overrides its route's; "" gives the route's back;
// anything but off, warn and enforce is refused, naming the field.
func TestUpdateUserSPFPolicy(t *testing.T) {
	r := admintest.New(t)
	call(t, r, "POST", "/api/users", `{"name":"alice@example.com","password":"correct horse"}`, token)

	code, obj, raw := call(t, r, "PATCH", "/api/users/alice@example.com", `{"spf_policy":" Enforce "}`, token)
	if code != 200 || obj["spf_policy"] != "enforce" || obj["spf_policy_overridden"] != true {
		t.Fatalf("set: %d %s", code, raw)
	}
	if u, _ := r.Users.Get("alice@example.com"); u.SPFPolicy != "enforce" {
		t.Fatalf("stored %q, want enforce", u.SPFPolicy)
	}
	code, _, raw = call(t, r, "PATCH", "/api/users/alice@example.com", `{"spf_policy":"strict"}`, token)
	if code != http.StatusBadRequest || !strings.Contains(raw, "spf_policy") || !strings.Contains(raw, "off, warn, enforce") {
		t.Fatalf("bad policy: %d %s", code, raw)
	}
	if u, _ := r.Users.Get("alice@example.com"); u.SPFPolicy != "enforce" {
		t.Fatalf("a refused update changed the policy to %q", u.SPFPolicy)
	}
	code, obj, raw = call(t, r, "PATCH", "/api/users/alice@example.com", `{"spf_policy":""}`, token)
	if code != 200 || obj["spf_policy_overridden"] != false {
		t.Fatalf("clear: %d %s", code, raw)
	}
	if u, _ := r.Users.Get("alice@example.com"); u.SPFPolicy != "" {
		t.Fatalf("not cleared: %q", u.SPFPolicy)
	}
}
