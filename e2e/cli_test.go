package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"outbound/internal/testutil"
)

// TestCLIUserLifecycle: an operator adds a user (password on stdin), lists
// it, changes its password (the old one then gets 535, the new one logs
// in) and deletes it (then nothing logs in). Bad input gets a non-zero exit
// and a message that says what is wrong.
func TestCLIUserLifecycle(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.start()

	const name = "billing@example.com"
	if res := r.cli("first-password-1\n", "user", "add", name, "--allow-from", "example.org", "--allow-from", "noreply@example.net"); res.Code != 0 || !strings.Contains(res.Stdout, "added user "+name) {
		t.Fatalf("user add: %s", res)
	}

	res := r.cli("", "user", "list")
	if res.Code != 0 || !strings.Contains(res.Stdout, name) || !strings.Contains(res.Stdout, "example.org,noreply@example.net") {
		t.Errorf("user list does not show %s with its allowed senders: %s", name, res)
	}
	res = r.cli("", "user", "list", "--json")
	var users []struct {
		Name      string   `json:"name"`
		AllowFrom []string `json:"allow_from"`
		Route     string   `json:"route"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &users); err != nil || len(users) != 1 || users[0].Name != name ||
		strings.Join(users[0].AllowFrom, ",") != "example.org,noreply@example.net" || users[0].Route != "default" {
		t.Errorf("user list --json = %+v (%v), want one %s on the default route; %s", users, err, name, res)
	}
	if strings.Contains(res.Stdout, "first-password-1") || strings.Contains(res.Stdout, "hash") {
		t.Errorf("user list --json shows a password or hash: %s", res.Stdout)
	}

	r.mustLogin(name, "first-password-1")

	if res := r.cli("second-password-2\n", "user", "passwd", name); res.Code != 0 {
		t.Fatalf("user passwd: %s", res)
	}
	r.mustFailLogin(name, "first-password-1")
	r.mustLogin(name, "second-password-2")

	if res := r.cli("", "user", "del", name); res.Code != 0 {
		t.Fatalf("user del: %s", res)
	}
	if res := r.cli("", "user", "list"); res.Code != 0 || strings.Contains(res.Stdout, name) {
		t.Errorf("user list after del: %s", res)
	}
	r.mustFailLogin(name, "second-password-2")

	bad := []struct {
		what  string
		stdin string
		args  []string
		want  string // in stderr
	}{
		{"short password", "short\n", []string{"user", "add", "shorty@example.com"}, "at least 8 characters"},
		{"no password on stdin", "", []string{"user", "add", "nopass@example.com"}, "no password on standard input"},
		{"bad allow-from", "long-enough-pass\n", []string{"user", "add", "x@example.com", "--allow-from", "not a domain"}, "allowed sender"},
		{"allow-from without a dot", "long-enough-pass\n", []string{"user", "add", "y@example.com", "--allow-from", "localhost"}, "allowed sender"},
		{"user name with a space", "long-enough-pass\n", []string{"user", "add", "two words"}, "must not contain spaces"},
		{"del unknown user", "", []string{"user", "del", "ghost@example.com"}, "no such user"},
		{"passwd unknown user", "long-enough-pass\n", []string{"user", "passwd", "ghost@example.com"}, "no such user"},
		{"passwd too short", "short\n", []string{"user", "passwd", "ghost@example.com"}, "at least 8 characters"},
		{"unknown subcommand", "", []string{"user", "frobnicate"}, "unknown user subcommand"},
		{"add without a name", "long-enough-pass\n", []string{"user", "add"}, "usage: outbound user add"},
	}
	for _, b := range bad {
		res := r.cli(b.stdin, b.args...)
		if res.Code == 0 || !strings.Contains(res.Stderr, b.want) {
			t.Errorf("%s (outbound %s): want a non-zero exit and %q on stderr, got %s", b.what, strings.Join(b.args, " "), b.want, res)
		}
	}
	// A duplicate add is refused and leaves the first user's password alone.
	r.addUser("dup@example.com", "dup-password-1")
	if res := r.cli("dup-password-2\n", "user", "add", "dup@example.com"); res.Code == 0 || !strings.Contains(res.Stderr, "already exists") {
		t.Errorf("duplicate user add: want a non-zero exit saying \"already exists\", got %s", res)
	}
	r.mustLogin("dup@example.com", "dup-password-1")

	// Nothing the failed commands tried to create exists.
	res = r.cli("", "user", "list", "--json")
	if err := json.Unmarshal([]byte(res.Stdout), &users); err != nil || len(users) != 1 || users[0].Name != "dup@example.com" {
		t.Errorf("after the bad commands, user list --json = %+v (%v), want only dup@example.com", users, err)
	}
}
