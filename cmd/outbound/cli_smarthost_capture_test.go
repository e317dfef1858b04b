package main

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
)

// `smarthost add NAME --kind capture` adds a capture smarthost with no
// other flag; list, show and test say it captures; SMTP flags with
// --kind capture are refused by name before the API is asked; update
// --kind switches it back to smtp with the settings given.
func TestCLISmarthostKindCapture(t *testing.T) {
	r := newCLIRig(t)
	out := r.mustRun("smarthost", "add", "staging", "--kind", "capture")
	if !strings.Contains(out, "added smarthost staging: capture (its users' mail is kept in the capture store, never sent)") ||
		!strings.Contains(out, "result: ok") {
		t.Fatalf("add:\n%s", out)
	}
	if h, err := r.Smarthosts.Get("staging"); err != nil || !h.Captures() {
		t.Fatalf("stored: %+v %v", h, err)
	}
	if out := r.mustRun("smarthost", "list"); !strings.Contains(out, "staging") || !strings.Contains(out, "(capture)") {
		t.Fatalf("list:\n%s", out)
	}
	if out := r.mustRun("smarthost", "show", "staging"); !strings.Contains(out, "Kind:        capture") || strings.Contains(out, "Host:") {
		t.Fatalf("show:\n%s", out)
	}
	if out := r.mustRun("smarthost", "test", "staging"); !strings.Contains(out, "nothing to connect to") || !strings.Contains(out, "result: ok") {
		t.Fatalf("test:\n%s", out)
	}

	_, _, err := r.run("", "smarthost", "add", "c2", "--kind", "capture", "--host", "smtp.example.com", "--port", "587")
	if err == nil || !strings.Contains(err.Error(), "takes no --host, --port") {
		t.Fatalf("capture with SMTP flags: %v", err)
	}
	_, _, err = r.run("", "smarthost", "update", "staging", "--kind", "capture", "--username", "u")
	if err == nil || !strings.Contains(err.Error(), "takes no --username") {
		t.Fatalf("update to capture with SMTP flags: %v", err)
	}
	_, _, err = r.run("", "smarthost", "add", "c3", "--kind", "mirror", "--host", "smtp.example.com", "--port", "587", "--tls", "starttls")
	var apiErr *admin.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(err.Error(), `kind "mirror"`) {
		t.Fatalf("unknown kind: %v", err)
	}

	out, errOut, err := r.run(admintest.UpstreamPassword+"\n", "smarthost", "update", "staging", "--kind", "smtp", "--host", r.Upstream.Host,
		"--port", strconv.Itoa(r.Upstream.Port), "--tls", "starttls", "--username", admintest.UpstreamUser, "--password-stdin", "--ca-file", r.CAFile)
	if err != nil || !strings.Contains(out, "updated smarthost staging: "+r.Upstream.Host) {
		t.Fatalf("back to smtp: %v\n%s%s", err, out, errOut)
	}
	if out := r.mustRun("smarthost", "show", "staging"); !strings.Contains(out, "Kind:        smtp") {
		t.Fatalf("show after the change:\n%s", out)
	}
}
