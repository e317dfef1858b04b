package main

import (
	"strings"
	"testing"
)

func TestCLIUserSetDSNOffAndOn(t *testing.T) {
	r := newCLIRig(t)
	if _, err := r.Users.Add("alice@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	out := r.mustRun("user", "set", "alice@example.com", "--dsn", "off")
	if u, _ := r.Users.Get("alice@example.com"); !u.DSNOff || !strings.Contains(out, "Notifications:   off") {
		t.Fatalf("after --dsn off: %+v\n%s", u, out)
	}
	out = r.mustRun("user", "set", "alice@example.com", "--dsn", "on")
	if u, _ := r.Users.Get("alice@example.com"); u.DSNOff || !strings.Contains(out, "Notifications:   by e-mail") {
		t.Fatalf("after --dsn on: %+v\n%s", u, out)
	}
	_, _, err := r.run("", "user", "set", "alice@example.com", "--dsn", "maybe")
	if _, isUsage := err.(usageError); !isUsage || !strings.Contains(err.Error(), "on or off") {
		t.Fatalf("--dsn maybe: %v, want a usage error asking for on or off", err)
	}
}
