package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"outbound/internal/testutil"
)

// An assistant's session with `outbound mcp` over stdio against the
// running relay: the tools are listed with their schemas; a smarthost is
// added and its connection test comes back step by step; a user is routed
// through it, its mail arrives there, and usage counts it. The stored
// password is in no tool's answer, nor in the relay's log or the MCP
// server's stderr; a bad argument is a tool error naming what to fix, and
// the server answers on. The admin listener serves the same tools at /mcp
// to requests with the admin token.
func TestMCPAssistantSetsUpASmarthost(t *testing.T) {
	def := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, def.Addr())
	const upPass = "SG.mcp-secret-of-upstream-qqq777"
	up := smarthostUpstream(r, "apikey", upPass)
	r.start()
	r.addUser("shop@example.com", "shop password 1")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.Command(cliBin, "-config", r.ConfigPath, "mcp")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "e2e"}, nil).Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string][]string{}
	for _, tool := range tools.Tools {
		var s struct {
			Required []string `json:"required"`
		}
		b, _ := json.Marshal(tool.InputSchema)
		json.Unmarshal(b, &s)
		schemas[tool.Name] = s.Required
	}
	for name, want := range map[string]string{"smarthost_add": "name", "users_route": "smarthost", "usage": "",
		"user_add": "name", "queue_show": "id", "dns_records": "domain", "doctor": "", "events_list": ""} {
		got, ok := schemas[name]
		if !ok || strings.Join(got, ",") != want {
			t.Errorf("tool %s: listed %v, required %v, want %q", name, ok, got, want)
		}
	}

	var answers []string
	call := func(name string, args map[string]any) (string, bool) {
		t.Helper()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v\nstderr: %s", name, err, stderr.String())
		}
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*sdk.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		answers = append(answers, b.String())
		return b.String(), res.IsError
	}
	mustCall := func(name string, args map[string]any) string {
		t.Helper()
		out, isErr := call(name, args)
		if isErr {
			t.Fatalf("%s: tool error: %s", name, out)
		}
		return out
	}

	out := mustCall("smarthost_add", map[string]any{"name": "sendgrid", "host": up.Host, "port": up.Port, "tls": "starttls",
		"username": "apikey", "password": upPass, "ca_file": r.CAFile})
	var added struct {
		Saved bool `json:"saved"`
		Test  struct {
			OK    bool `json:"ok"`
			Steps []struct {
				Name, Status string
			} `json:"steps"`
		} `json:"test"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var steps []string
	for _, s := range added.Test.Steps {
		steps = append(steps, s.Name+":"+s.Status)
	}
	if !added.Saved || !added.Test.OK || !strings.Contains(strings.Join(steps, " "), "tls:ok auth:ok") {
		t.Fatalf("smarthost_add: saved %v ok %v steps %v\n%s", added.Saved, added.Test.OK, steps, out)
	}

	if out := mustCall("users_route", map[string]any{"users": []string{"shop@example.com"}, "smarthost": "sendgrid"}); !strings.Contains(out, `"route": "sendgrid"`) {
		t.Fatalf("users_route: %s", out)
	}
	r.sendAs("shop@example.com", "shop password 1", "through the assistant's smarthost")
	up.Wait(t, 1, 20*time.Second)

	if out := mustCall("usage", map[string]any{"user": "shop@example.com"}); !strings.Contains(out, `"sent_last_hour": 1`) {
		t.Errorf("usage: %s", out)
	}
	mustCall("smarthost_show", map[string]any{"name": "sendgrid"})
	mustCall("user_show", map[string]any{"name": "shop@example.com"})
	mustCall("smarthost_test", map[string]any{"name": "sendgrid"})

	// Bad arguments: a tool error saying what to fix, and the server answers on.
	if out, isErr := call("smarthost_add", map[string]any{"host": up.Host}); !isErr || !strings.Contains(out, "name") {
		t.Errorf("smarthost_add without a name: isError %v: %s", isErr, out)
	}
	if out, isErr := call("users_route", map[string]any{"users": []string{"shop@example.com"}, "smarthost": "nope"}); !isErr || !strings.Contains(out, "nope") {
		t.Errorf("users_route to an unknown smarthost: isError %v: %s", isErr, out)
	}
	mustCall("users_list", nil)

	for _, a := range answers {
		if strings.Contains(a, upPass) {
			t.Fatalf("a tool's answer contains the smarthost password: %s", a)
		}
	}
	cs.Close()

	// The same tools over HTTP at /mcp on the admin listener, behind the
	// admin token.
	token, err := os.ReadFile(filepath.Join(r.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	connectHTTP := func(token string) (*sdk.ClientSession, error) {
		return sdk.NewClient(&sdk.Implementation{Name: "e2e"}, nil).Connect(ctx, &sdk.StreamableClientTransport{
			Endpoint: "http://" + r.AdminAddr + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}},
			DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	}
	if hs, err := connectHTTP("wrong-token"); err == nil {
		hs.Close()
		t.Fatal("/mcp answered a wrong token")
	}
	hs, err := connectHTTP(strings.TrimSpace(string(token)))
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	res, err := hs.CallTool(ctx, &sdk.CallToolParams{Name: "usage", Arguments: map[string]any{"user": "shop@example.com"}})
	if err != nil || res.IsError || !strings.Contains(res.Content[0].(*sdk.TextContent).Text, `"sent_last_hour": 1`) {
		t.Fatalf("usage over HTTP: %v %+v", err, res)
	}

	if strings.Contains(stderr.String(), upPass) || strings.Contains(r.log(), upPass) {
		t.Fatal("the smarthost password was logged")
	}
}

// bearer sends a bearer token with every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
