package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"outbound/events"
	"outbound/internal/testutil"
	"outbound/webhooks"
)

// A user's endpoint that is down when the first event comes and back
// later receives every event of the user's message exactly once, in the
// order of the event log, each signed so that the Standard Webhooks
// reference library verifies it with the secret `webhook add` printed.
func TestWebhookEndpointDownThenBackGetsEveryEventOnceInOrder(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	// The endpoint is an httptest server: plain HTTP on loopback.
	r.cfg.set("webhooks", "allow_http", "true")
	r.cfg.set("webhooks", "allow_private", "true")

	var mu sync.Mutex
	var secret string
	requests, failures := 0, 1
	var taken []webhooks.Payload
	ids := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Error(err)
		}
		if err := wh.Verify(body, req.Header); err != nil {
			t.Errorf("the reference library refuses %s: %v", req.Header.Get("webhook-id"), err)
		}
		if requests++; requests <= failures {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		ids[req.Header.Get("webhook-id")]++
		var p webhooks.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		taken = append(taken, p)
	}))
	defer srv.Close()

	r.start()
	r.addUser("app@example.com", "app password 1")
	res := r.cli("", "webhook", "add", "app@example.com", srv.URL+"/hooks")
	m := regexp.MustCompile(`signing secret \(shown only now\): (whsec_\S+)`).FindStringSubmatch(res.Stdout)
	if res.Code != 0 || m == nil {
		t.Fatalf("webhook add: %s", res)
	}
	mu.Lock()
	secret = m[1]
	mu.Unlock()

	c, err := r.login(true, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := []string{"bob@example.net", "carol@example.net"}
	if _, err := sendMessage(c, "app@example.com", to, message("app@example.com", to[0], "hello", "x")); err != nil {
		t.Fatal(err)
	}

	// Received and relayed for each recipient; the first request fails,
	// the retry comes 5 s later.
	waitUntil(t, 60*time.Second, "four events taken", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(taken) >= 4
	})
	var logged []events.Event
	res = r.cli("", "events", "--user", "app@example.com", "--json")
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		var e events.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events --json line %q: %v", line, err)
		}
		logged = append(logged, e)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(taken) != len(logged) {
		t.Fatalf("taken %d events, the log has %d: %+v", len(taken), len(logged), logged)
	}
	for i, p := range taken {
		if p.Data.ID != logged[i].ID || p.Type != "message."+string(logged[i].Kind) {
			t.Errorf("event %d taken: %s %s, logged: %s %s", i, p.Type, p.Data.ID, logged[i].Kind, logged[i].ID)
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s taken %d times", id, n)
		}
	}
	if requests != len(taken)+failures {
		t.Errorf("%d requests for %d events and %d failure", requests, len(taken), failures)
	}
}
