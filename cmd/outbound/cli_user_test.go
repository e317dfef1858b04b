package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
)

// cliRig is the CLI pointed, through a config file, at the admin API of
// an admintest.Rig.
type cliRig struct {
	*admintest.Rig
	t      *testing.T
	config string
}

func newCLIRig(t *testing.T) *cliRig {
	t.Helper()
	api := admintest.New(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, dataDir, "admin.token", []byte(admintest.Token+"\n"))
	config := testutil.WriteFile(t, dir, "outbound.toml", []byte("data_dir = "+strconv.Quote(dataDir)+
		"\n[admin]\nlisten = "+strconv.Quote(strings.TrimPrefix(api.URL, "http://"))+"\n"))
	return &cliRig{Rig: api, t: t, config: config}
}

// run runs the CLI with args; it returns stdout, stderr and the error.
func (r *cliRig) run(stdin string, args ...string) (string, string, error) {
	r.t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(append([]string{"-config", r.config}, args...), strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func (r *cliRig) mustRun(args ...string) string {
	r.t.Helper()
	out, errOut, err := r.run("", args...)
	if err != nil {
		r.t.Fatalf("outbound %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func TestCLIUserSetChangesOnlyWhatIsGiven(t *testing.T) {
	r := newCLIRig(t)
	if _, err := r.Users.Add("alice@example.com", "correct horse", []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	out := r.mustRun("user", "set", "alice@example.com", "--display-name", "Zoë Example", "--reply-to", "help@example.com")
	for _, want := range []string{"updated user alice@example.com", "Allowed From:    alice@example.com (its login), example.org",
		"Display name:    Zoë Example", "Reply-To:        help@example.com"} {
		if !strings.Contains(out, want) {
			t.Errorf("user set output lacks %q:\n%s", want, out)
		}
	}
	u, _ := r.Users.Get("alice@example.com")
	if u.DisplayName != "Zoë Example" || u.ReplyTo != "help@example.com" || strings.Join(u.AllowFrom, ",") != "example.org" {
		t.Fatalf("after set: %+v", u)
	}

	// --allow-from replaces the list (flags may come before the user).
	r.mustRun("user", "set", "--allow-from", "example.net", "--allow-from", "sales@example.com", "alice@example.com")
	if u, _ = r.Users.Get("alice@example.com"); strings.Join(u.AllowFrom, ",") != "example.net,sales@example.com" || u.DisplayName != "Zoë Example" {
		t.Fatalf("after --allow-from: %+v", u)
	}

	// "" clears a setting, --clear-allow-from the list; --json prints the user's detail.
	out = r.mustRun("user", "set", "alice@example.com", "--display-name", "", "--clear-allow-from", "--json")
	var d admin.UserDetail
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Name != "alice@example.com" || d.DisplayName != "" || d.ReplyTo != "help@example.com" || len(d.AllowFrom) != 0 {
		t.Fatalf("user set --json = %+v (%v):\n%s", d, err, out)
	}
	if u, _ = r.Users.Get("alice@example.com"); u.DisplayName != "" || u.AllowFrom != nil || u.ReplyTo != "help@example.com" {
		t.Fatalf("after clearing: %+v", u)
	}
	r.mustRun("user", "set", "alice@example.com", "--reply-to", "")
	if u, _ = r.Users.Get("alice@example.com"); u.ReplyTo != "" {
		t.Fatalf("reply-to not cleared: %+v", u)
	}
}

func TestCLIUserSetBadInput(t *testing.T) {
	r := newCLIRig(t)
	if _, err := r.Users.Add("alice@example.com", "correct horse", []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what  string
		args  []string
		usage bool // a usage error (exit 2) rather than the API's refusal
		want  string
	}{
		{"no settings", []string{"user", "set", "alice@example.com"}, true, "usage: outbound user set USER"},
		{"no user", []string{"user", "set", "--display-name", "A"}, true, "usage: outbound user set USER"},
		{"two users", []string{"user", "set", "a@example.com", "b@example.com", "--display-name", "A"}, true, "usage: outbound user set USER"},
		{"list and clear", []string{"user", "set", "alice@example.com", "--allow-from", "example.com", "--clear-allow-from"}, true, "not both"},
		{"empty allow-from", []string{"user", "set", "alice@example.com", "--allow-from", ""}, true, "--clear-allow-from"},
		{"unknown flag", []string{"user", "set", "alice@example.com", "--display", "A"}, true, "flag provided but not defined"},
		{"unknown user", []string{"user", "set", "ghost@example.com", "--display-name", "Ghost"}, false, "no such user"},
		{"bad allowed sender", []string{"user", "set", "alice@example.com", "--allow-from", "not a domain"}, false, "allow_from[0]"},
		{"bad reply-to", []string{"user", "set", "alice@example.com", "--reply-to", "help"}, false, "reply_to"},
		{"display name with a line break", []string{"user", "set", "alice@example.com", "--display-name", "A\nBcc: x@example.net"}, false, "line breaks"},
	} {
		_, _, err := r.run("", tc.args...)
		_, isUsage := err.(usageError)
		if err == nil || isUsage != tc.usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s (outbound %s): err = %v (usage error: %v), want %q (usage error: %v)", tc.what, strings.Join(tc.args, " "), err, isUsage, tc.want, tc.usage)
		}
	}
	if u, _ := r.Users.Get("alice@example.com"); u.DisplayName != "" || u.ReplyTo != "" || strings.Join(u.AllowFrom, ",") != "example.org" {
		t.Fatalf("refused commands changed the user: %+v", u)
	}
}

func TestCLIUserShow(t *testing.T) {
	r := newCLIRig(t)
	if _, err := r.Users.Add("alice@example.com", "correct horse", []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	r.mustRun("user", "set", "alice@example.com", "--display-name", "Alice Example", "--reply-to", "Support <help@example.com>")
	out := r.mustRun("user", "show", "alice@example.com")
	for _, want := range []string{"User:            alice@example.com", "Route:           default", "Display name:    Alice Example",
		"Reply-To:        Support <help@example.com>", "Limits:          2 per hour, 2 per day (the route's defaults)",
		"Sent:            0 in the last hour, 0 in the last day", "Remaining:       2 this hour, 2 today"} {
		if !strings.Contains(out, want) {
			t.Errorf("user show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Smarthost:") {
		t.Errorf("user show on the default route shows a smarthost:\n%s", out)
	}

	// On a smarthost, with own limits: the smarthost and its masked password.
	if out, errOut, err := r.run("SG.upstream-secret-xyz789\n", "smarthost", "add", "sg", "--host", r.Upstream.Host, "--port", strconv.Itoa(r.Upstream.Port),
		"--tls", "starttls", "--username", "apikey", "--password-stdin", "--ca-file", r.CAFile); err != nil {
		t.Fatalf("smarthost add: %v\n%s%s", err, out, errOut)
	}
	r.mustRun("user", "route", "alice@example.com", "--smarthost", "sg")
	r.mustRun("limits", "set", "alice@example.com", "--per-hour", "40", "--per-day", "400")
	out = r.mustRun("user", "show", "alice@example.com")
	for _, want := range []string{"Route:           sg", "Limits:          40 per hour, 400 per day (own limits)",
		"Smarthost:       sg (127.0.0.1:" + strconv.Itoa(r.Upstream.Port) + ", starttls)", "Username:      apikey", "Password:      ****xyz789"} {
		if !strings.Contains(out, want) {
			t.Errorf("user show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SG.upstream-secret-xyz789") {
		t.Fatalf("user show prints the smarthost password:\n%s", out)
	}

	out = r.mustRun("user", "show", "--json", "alice@example.com")
	var d admin.UserDetail
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.Route != "sg" || d.Smarthost == nil || d.Smarthost.Password != "****xyz789" ||
		!d.Limits.Overridden || d.Limits.PerDay != 400 || d.Usage.RemainingDay != 400 || d.ReplyTo != "Support <help@example.com>" {
		t.Fatalf("user show --json = %+v (%v):\n%s", d, err, out)
	}

	if _, _, err := r.run("", "user", "show", "ghost@example.com"); err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Errorf("user show of an unknown user: %v", err)
	}
	if _, _, err := r.run("", "user", "show"); err == nil || !strings.Contains(err.Error(), "usage: outbound user show USER") {
		t.Errorf("user show without a user: %v", err)
	}
}

// `user add --generate-password --json` gives a script the new user and
// the one copy of its password there will ever be; that password works.
func TestCLIUserAddGeneratedPasswordAsJSON(t *testing.T) {
	r := newCLIRig(t)
	out := r.mustRun("user", "add", "app@example.com", "--allow-from", "example.com", "--generate-password", "--json")
	var added struct {
		Name      string   `json:"name"`
		AllowFrom []string `json:"allow_from"`
		Password  string   `json:"password"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("user add --json: %v\n%s", err, out)
	}
	if added.Name != "app@example.com" || strings.Join(added.AllowFrom, ",") != "example.com" || len(added.Password) < 16 {
		t.Fatalf("user add --json: %+v", added)
	}
	if _, err := r.Users.Verify("app@example.com", added.Password); err != nil {
		t.Fatalf("the printed password does not log in: %v", err)
	}
}
