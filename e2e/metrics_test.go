package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// The admin listener serves Prometheus metrics that move with the traffic.
func TestMetricsEndpoint(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.start()
	r.addUser("app@example.com", "app password 1")
	c, err := r.login(true, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sendMessage(c, "app@example.com", []string{"bob@example.net"}, message("app@example.com", "bob@example.net", "m", "x")); err != nil {
		t.Fatal(err)
	}
	r.mustFailLogin("app@example.com", "wrong password")
	up.Wait(t, 1, 10*time.Second)

	var body string
	waitUntil(t, 10*time.Second, "delivery counted in /metrics", func() bool {
		resp, err := http.Get("http://" + r.AdminAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, `outbound_deliveries_total{category="",result="delivered",upstream="default"} 1`)
	})
	for _, want := range []string{
		`outbound_submissions_total{result="queued"} 1`,
		`outbound_auth_failures_total{reason="bad_credentials"} 1`,
		`outbound_queue_messages 0`,
		`outbound_upstream_attempt_seconds_count{upstream="default"} 1`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
