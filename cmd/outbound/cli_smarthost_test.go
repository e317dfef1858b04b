package main

import (
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
)

// A smarthost whose connection test fails is not saved: the CLI prints the
// report, then the API's refusal, and exits 1; --force saves it with a
// warning. `smarthost test` prints the report and exits 1 when it failed.
func TestCLISmarthostFailedConnectionTest(t *testing.T) {
	r := newCLIRig(t)
	host, port, _ := net.SplitHostPort(testutil.FreePort(t)) // nothing listens there
	add := []string{"smarthost", "add", "lab", "--host", host, "--port", port, "--tls", "none"}

	out, _, err := r.run("", add...)
	var apiErr *admin.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 422 || !strings.Contains(err.Error(), "connection test failed at step connect") ||
		!strings.Contains(out, "connection test of "+host+":"+port) || !strings.Contains(out, "result: FAILED") {
		t.Fatalf("failing add: err = %v\n%s", err, out)
	}
	if _, err := r.Smarthosts.Get("lab"); err == nil {
		t.Fatal("a smarthost whose test failed was saved")
	}
	out = r.mustRun(append(add, "--force")...)
	if !strings.Contains(out, "warning: the connection test failed; saved anyway (--force)") || !strings.Contains(out, "added smarthost lab: "+host+":"+port+" (none)") {
		t.Fatalf("forced add:\n%s", out)
	}

	out, _, err = r.run("", "smarthost", "test", "lab")
	if err != (exitError{code: 1}) || !strings.Contains(out, "result: FAILED") {
		t.Fatalf("smarthost test of a failing smarthost: err = %v\n%s", err, out)
	}
	out, _, err = r.run("", "smarthost", "test", "lab", "--json")
	var res admin.SmarthostResult
	if err != (exitError{code: 1}) || json.Unmarshal([]byte(out), &res) != nil || res.Test == nil || res.Test.OK || res.Smarthost.Name != "lab" {
		t.Fatalf("smarthost test --json of a failing smarthost: err = %v\n%s", err, out)
	}

	if _, _, err := r.run(admintest.UpstreamPassword+"\n", "smarthost", "add", "sg", "--host", r.Upstream.Host, "--port", strconv.Itoa(r.Upstream.Port),
		"--tls", "starttls", "--username", admintest.UpstreamUser, "--password-stdin", "--ca-file", r.CAFile); err != nil {
		t.Fatal(err)
	}
	if out := r.mustRun("smarthost", "test", "sg"); !strings.Contains(out, "result: ok") {
		t.Fatalf("smarthost test of a working smarthost:\n%s", out)
	}
}
