package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"outbound/internal/admintest"
	"outbound/smarthost"
)

// session connects an SDK client to the server over the in-memory
// transport, the server's tools on rig's admin API.
func session(t *testing.T, rig *admintest.Rig, o Options) *sdk.ClientSession {
	t.Helper()
	o.Client = rig.Client
	ctx := context.Background()
	st, ct := sdk.NewInMemoryTransports()
	ss, err := NewServer(o).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callTool calls a tool and returns its text and whether it was a tool
// error; a protocol error fails the test (the server must answer every
// call with a result).
func callTool(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) (string, bool) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String(), res.IsError
}

func mustCall(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) string {
	t.Helper()
	text, isErr := callTool(t, cs, name, args)
	if isErr {
		t.Fatalf("%s: tool error: %s", name, text)
	}
	return text
}

func TestToolsHaveSchemasDescriptionsAndHints(t *testing.T) {
	rig := admintest.New(t)
	cs := session(t, rig, Options{Doctor: func(context.Context) (any, error) { return []string{}, nil }})
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*sdk.Tool{}
	for _, tool := range res.Tools {
		got[tool.Name] = tool
		if tool.Description == "" || tool.Annotations == nil {
			t.Errorf("%s: no description or annotations", tool.Name)
		}
	}
	required := map[string][]string{
		"users_list": nil, "user_show": {"name"}, "user_add": {"name"}, "user_set": {"name"},
		"users_route": {"smarthost"}, "users_route_default": nil,
		"smarthost_presets": nil, "smarthosts_list": nil, "smarthost_show": {"name"},
		"smarthost_add": {"name"}, "smarthost_test": {"name"}, "smarthost_update": {"name"}, "smarthost_delete": {"name"},
		"limits_set": {"user"}, "limits_reset": {"user"}, "usage": nil,
		"queue_list": nil, "queue_show": {"id"}, "queue_retry": {"id"}, "queue_bounce": {"id"}, "queue_delete": {"id"},
		"spf_check": nil, "dns_records": {"domain"}, "doctor": nil,
		"suppressions_list": nil, "suppression_add": {"addr"}, "suppression_delete": {"addr"}, "events_list": nil,
	}
	for name, want := range required {
		tool, ok := got[name]
		if !ok {
			t.Errorf("tool %s missing", name)
			continue
		}
		var schema struct {
			Type       string         `json:"type"`
			Required   []string       `json:"required"`
			Properties map[string]any `json:"properties"`
		}
		b, _ := json.Marshal(tool.InputSchema)
		if err := json.Unmarshal(b, &schema); err != nil {
			t.Fatal(err)
		}
		if schema.Type != "object" || strings.Join(schema.Required, ",") != strings.Join(want, ",") {
			t.Errorf("%s: schema type %q required %v, want object %v", name, schema.Type, schema.Required, want)
		}
	}
	if len(got) != len(required) {
		t.Errorf("%d tools, want %d", len(got), len(required))
	}
	for _, name := range []string{"smarthost_delete", "queue_bounce", "queue_delete", "suppression_delete", "limits_reset"} {
		if a := got[name].Annotations; a.ReadOnlyHint || a.DestructiveHint == nil || !*a.DestructiveHint {
			t.Errorf("%s: not marked destructive", name)
		}
	}
	for _, name := range []string{"users_list", "user_show", "smarthosts_list", "usage", "queue_list", "events_list", "dns_records", "spf_check", "doctor"} {
		if !got[name].Annotations.ReadOnlyHint {
			t.Errorf("%s: not marked read-only", name)
		}
	}
	for _, name := range []string{"user_add", "smarthost_add", "users_route"} {
		if a := got[name].Annotations; a.ReadOnlyHint || a.DestructiveHint == nil || *a.DestructiveHint {
			t.Errorf("%s: marked read-only or destructive", name)
		}
	}
}

func TestDoctorToolLeftOutWithoutDoctor(t *testing.T) {
	cs := session(t, admintest.New(t), Options{})
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range res.Tools {
		if tool.Name == "doctor" {
			t.Fatal("doctor listed without Options.Doctor")
		}
	}
}

// The setup an assistant walks through: a smarthost added with its test
// report, a user routed through it, its usage read; the stored password
// never comes back in any answer.
func TestSmarthostAddRouteAndUsageWithoutThePassword(t *testing.T) {
	rig := admintest.New(t)
	rig.AddUsers(t, "shop@example.com")
	cs := session(t, rig, Options{})
	var outputs []string
	run := func(name string, args map[string]any) string {
		out := mustCall(t, cs, name, args)
		outputs = append(outputs, out)
		return out
	}
	out := run("smarthost_add", map[string]any{"name": "sendgrid", "host": rig.Upstream.Host, "port": rig.Upstream.Port,
		"tls": "starttls", "username": admintest.UpstreamUser, "password": admintest.UpstreamPassword,
		"ca_file": rig.CAFile, "spf_include": "sendgrid.net"})
	var added struct {
		Saved bool `json:"saved"`
		Test  struct {
			OK    bool `json:"ok"`
			Steps []struct {
				Step, Status string
			} `json:"steps"`
		} `json:"test"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !added.Saved || !added.Test.OK || len(added.Test.Steps) < 3 {
		t.Fatalf("smarthost_add: %s", out)
	}
	if !strings.Contains(out, "****") {
		t.Errorf("smarthost_add shows no masked password: %s", out)
	}
	out = run("users_route", map[string]any{"users": []string{"shop@example.com"}, "smarthost": "sendgrid"})
	if !strings.Contains(out, `"route": "sendgrid"`) || !strings.Contains(out, `"per_hour": 50`) {
		t.Errorf("users_route: %s", out)
	}
	out = run("usage", map[string]any{"user": "shop@example.com"})
	if !strings.Contains(out, `"remaining_day": 500`) {
		t.Errorf("usage: %s", out)
	}
	run("user_show", map[string]any{"name": "shop@example.com"})
	run("smarthost_show", map[string]any{"name": "sendgrid"})
	run("smarthosts_list", nil)
	run("smarthost_test", map[string]any{"name": "sendgrid"})
	run("smarthost_update", map[string]any{"name": "sendgrid", "password": admintest.UpstreamPassword})
	for _, o := range outputs {
		if strings.Contains(o, admintest.UpstreamPassword) {
			t.Fatalf("an answer contains the stored password: %s", o)
		}
	}
}

// A failed connection test is a tool error that names what went wrong and
// still carries the steps; nothing is saved.
func TestSmarthostAddFailedTestIsToolErrorWithSteps(t *testing.T) {
	rig := admintest.New(t)
	cs := session(t, rig, Options{})
	text, isErr := callTool(t, cs, "smarthost_add", map[string]any{"name": "sendgrid", "host": rig.Upstream.Host,
		"port": rig.Upstream.Port, "tls": "starttls", "username": admintest.UpstreamUser, "password": "wrong-password",
		"ca_file": rig.CAFile})
	if !isErr || !strings.Contains(text, "not saved") || !strings.Contains(text, `"steps"`) || !strings.Contains(text, "failed") {
		t.Fatalf("isError=%v text=%s", isErr, text)
	}
	if strings.Contains(text, "wrong-password") {
		t.Errorf("the refusal echoes the password: %s", text)
	}
	if _, err := rig.Smarthosts.Get("sendgrid"); !errors.Is(err, smarthost.ErrNotFound) {
		t.Errorf("smarthost saved after a failed test: %v", err)
	}
}

// Bad arguments are tool errors that say what to fix; the server answers
// the next call as before.
func TestBadArgumentsAreToolErrorsNamingTheFix(t *testing.T) {
	rig := admintest.New(t)
	rig.AddUsers(t, "shop@example.com")
	cs := session(t, rig, Options{})
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"user_show", map[string]any{}, "name"},
		{"smarthost_add", map[string]any{"name": 7}, "name"},
		{"users_route", map[string]any{"smarthost": "sendgrid"}, "give users"},
		{"users_route", map[string]any{"users": []string{"shop@example.com"}, "smarthost": "nope"}, "nope"},
		{"user_show", map[string]any{"name": "nobody@example.com"}, "nobody@example.com"},
		{"limits_set", map[string]any{"user": "shop@example.com"}, "per_hour"},
		{"limits_set", map[string]any{"user": "shop@example.com", "per_day": 1000000}, "max_per_day"},
		{"smarthost_add", map[string]any{"name": "x"}, "host"},
		{"events_list", map[string]any{"since": "yesterday"}, "RFC 3339"},
		{"spf_check", map[string]any{}, "give user"},
		{"user_set", map[string]any{"name": "shop@example.com"}, "nothing to change"},
	}
	for _, c := range cases {
		text, isErr := callTool(t, cs, c.tool, c.args)
		if !isErr || !strings.Contains(text, c.want) {
			t.Errorf("%s %v: isError=%v %q, want an error naming %q", c.tool, c.args, isErr, text, c.want)
		}
	}
	mustCall(t, cs, "users_list", nil)
}

func TestUserAddReturnsAWorkingGeneratedPassword(t *testing.T) {
	rig := admintest.New(t)
	cs := session(t, rig, Options{})
	out := mustCall(t, cs, "user_add", map[string]any{"name": "shop@example.com", "allow_from": []string{"example.com"}})
	var added struct {
		Name, Password string
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatal(err)
	}
	if added.Name != "shop@example.com" || len(added.Password) != 20 {
		t.Fatalf("user_add: %s", out)
	}
	if _, err := rig.Users.Verify("shop@example.com", added.Password); err != nil {
		t.Fatalf("the returned password does not log in: %v", err)
	}
	if show := mustCall(t, cs, "user_show", map[string]any{"name": "shop@example.com"}); strings.Contains(show, added.Password) {
		t.Fatal("user_show shows the password")
	}
}

func TestSPFCheckOfADomainUsesTheGivenChecker(t *testing.T) {
	var gotDomain, gotInclude string
	cs := session(t, admintest.New(t), Options{SPFCheck: func(_ context.Context, domain, include string, _ []string) (any, error) {
		gotDomain, gotInclude = domain, include
		return map[string]string{"verdict": "pass"}, nil
	}})
	out := mustCall(t, cs, "spf_check", map[string]any{"domain": "example.com", "include": "sendgrid.net"})
	if gotDomain != "example.com" || gotInclude != "sendgrid.net" || !strings.Contains(out, "pass") {
		t.Fatalf("checked %q %q: %s", gotDomain, gotInclude, out)
	}
}

// updateDocs rewrites the tool table of docs/assistants.md from the tools
// themselves: go test ./mcp -run TestDocsListEveryTool -update-docs
var updateDocs = flag.Bool("update-docs", false, "rewrite the tool table in docs/assistants.md")

// The guide's table is the tool list itself, so that it cannot drift.
func TestDocsListEveryTool(t *testing.T) {
	cs := session(t, admintest.New(t), Options{Doctor: func(context.Context) (any, error) { return nil, nil }})
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| tool | kind | arguments (* required) | what it does |\n|---|---|---|---|\n")
	for _, tool := range res.Tools {
		kind := "changes"
		switch a := tool.Annotations; {
		case a.ReadOnlyHint:
			kind = "read-only"
		case a.DestructiveHint != nil && *a.DestructiveHint:
			kind = "destructive"
		}
		var schema struct {
			Required   []string                   `json:"required"`
			Properties map[string]json.RawMessage `json:"properties"`
		}
		raw, _ := json.Marshal(tool.InputSchema)
		json.Unmarshal(raw, &schema)
		var args []string
		for name := range schema.Properties {
			if slices.Contains(schema.Required, name) {
				name += "*"
			}
			args = append(args, "`"+name+"`")
		}
		sort.Strings(args)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", tool.Name, kind, strings.Join(args, " "), tool.Description)
	}
	const path, begin, end = "../docs/assistants.md", "<!-- tools begin -->\n", "<!-- tools end -->"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s: no %q ... %q markers", path, begin, end)
	}
	want := string(doc[:i+len(begin)]) + b.String() + string(doc[j:])
	if *updateDocs {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(doc) != want {
		t.Fatalf("%s: the tool table is out of date; run go test ./mcp -run TestDocsListEveryTool -update-docs", path)
	}
}

// bearer adds a bearer token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// Over HTTP the tools answer only requests with the admin token.
func TestHTTPHandlerRequiresTheAdminToken(t *testing.T) {
	rig := admintest.New(t)
	rig.AddUsers(t, "shop@example.com")
	srv := httptest.NewServer(HTTPHandler(Options{Client: rig.Client}, admintest.Token))
	t.Cleanup(srv.Close)
	connect := func(token string) (*sdk.ClientSession, error) {
		return sdk.NewClient(&sdk.Implementation{Name: "test"}, nil).Connect(context.Background(),
			&sdk.StreamableClientTransport{Endpoint: srv.URL, HTTPClient: &http.Client{Transport: bearer{token}},
				DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	}
	if cs, err := connect("wrong-token"); err == nil {
		cs.Close()
		t.Fatal("connected with a wrong token")
	}
	cs, err := connect(admintest.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if out := mustCall(t, cs, "users_list", nil); !strings.Contains(out, "shop@example.com") {
		t.Fatalf("users_list: %s", out)
	}
}

// The remaining tools go through to the API: a suppression added, listed
// and lifted; the queue and events read; an unknown message named.
func TestSuppressionsQueueAndEventsTools(t *testing.T) {
	rig := admintest.New(t)
	rig.AddUsers(t, "shop@example.com")
	cs := session(t, rig, Options{})
	mustCall(t, cs, "suppression_add", map[string]any{"addr": "gone@example.net", "user": "shop@example.com", "reason": "mailbox closed"})
	if out := mustCall(t, cs, "suppressions_list", map[string]any{"user": "shop@example.com"}); !strings.Contains(out, "mailbox closed") {
		t.Fatalf("suppressions_list: %s", out)
	}
	mustCall(t, cs, "suppression_delete", map[string]any{"addr": "gone@example.net", "user": "shop@example.com"})
	if out := mustCall(t, cs, "suppressions_list", nil); strings.Contains(out, "gone@example.net") {
		t.Fatalf("still suppressed: %s", out)
	}
	mustCall(t, cs, "queue_list", map[string]any{"status": "queued"})
	mustCall(t, cs, "events_list", map[string]any{"since": "2026-01-02T15:04:05Z", "limit": 10})
	for _, tool := range []string{"queue_show", "queue_retry", "queue_bounce", "queue_delete"} {
		if text, isErr := callTool(t, cs, tool, map[string]any{"id": "no-such-id"}); !isErr || text == "" {
			t.Errorf("%s of an unknown message: isError=%v %q", tool, isErr, text)
		}
	}
	if out := mustCall(t, cs, "smarthost_presets", nil); !strings.Contains(out, "smtp.sendgrid.net") {
		t.Errorf("smarthost_presets: %s", out)
	}
}

// smarthost_add and smarthost_update take the kind, as the CLI's --kind
// does: a capture smarthost takes only its name, and SMTP settings with it
// are refused with the API's reason.
func TestSmarthostKindCapture(t *testing.T) {
	rig := admintest.New(t)
	cs := session(t, rig, Options{})
	out := mustCall(t, cs, "smarthost_add", map[string]any{"name": "staging", "kind": "capture"})
	if !strings.Contains(out, `"saved": true`) {
		t.Fatalf("smarthost_add kind capture: %s", out)
	}
	if h, err := rig.Smarthosts.Get("staging"); err != nil || !h.Captures() {
		t.Fatalf("stored: %+v %v", h, err)
	}
	text, isErr := callTool(t, cs, "smarthost_add", map[string]any{"name": "c2", "kind": "capture", "host": "smtp.example.com"})
	if !isErr || !strings.Contains(text, "host") {
		t.Fatalf("capture with a host: error %v, %s", isErr, text)
	}
	mustCall(t, cs, "smarthost_update", map[string]any{"name": "staging", "kind": "smtp", "host": rig.Upstream.Host,
		"port": rig.Upstream.Port, "tls": "starttls", "username": admintest.UpstreamUser,
		"password": admintest.UpstreamPassword, "ca_file": rig.CAFile})
	if h, err := rig.Smarthosts.Get("staging"); err != nil || h.Captures() || h.Host != rig.Upstream.Host {
		t.Fatalf("after update to smtp: %+v %v", h, err)
	}
}
