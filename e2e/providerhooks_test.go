package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"outbound/admin"
	"outbound/events"
	"outbound/internal/testutil"
	"outbound/suppression"
	"outbound/webhooks"
)

// A message relayed to the upstream is reported by Mailgun as failed
// permanently (550 5.1.1, Mailgun's documented payload signed with the
// smarthost's webhook signing key): the event is on the message's
// timeline, the recipient is suppressed, and the next RCPT to it gets
// 550 5.1.1 naming Mailgun's reason. The same request again is refused,
// and the app's own endpoint receives the bounce as a signed webhook that
// the Standard Webhooks reference library verifies.
func TestMailgunPermanentFailureWebhookSuppressesRecipient(t *testing.T) {
	const (
		sender = "app@example.com"
		gone   = "alice@example.net"
		key    = "key-e2e-mailgun-signing-0123456789"
		msgID  = "e2e-mailgun-1@example.com"
	)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	hooksAddr := testutil.FreePort(t)
	r.cfg.set("provider_webhooks", "listen", q(hooksAddr))
	// The app's own endpoint is an httptest server: plain HTTP on loopback.
	r.cfg.set("webhooks", "allow_http", "true")
	r.cfg.set("webhooks", "allow_private", "true")
	var mu sync.Mutex
	var secret string
	var appGot []webhooks.Payload
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(body, req.Header)
		}
		if err != nil {
			t.Errorf("the app's endpoint cannot verify %s: %v", req.Header.Get("webhook-id"), err)
		}
		var p webhooks.Payload
		if json.Unmarshal(body, &p) == nil {
			appGot = append(appGot, p)
		}
	}))
	defer app.Close()
	r.start()
	r.addUser(sender, "app password 1")
	res := r.cli("", "webhook", "add", sender, app.URL+"/outbound")
	m := regexp.MustCompile(`signing secret \(shown only now\): (whsec_\S+)`).FindStringSubmatch(res.Stdout)
	if res.Code != 0 || m == nil {
		t.Fatalf("webhook add: %s", res)
	}
	mu.Lock()
	secret = m[1]
	mu.Unlock()
	r.addLoopbackSmarthost("mg", up)
	keyFile := testutil.WriteFile(t, t.TempDir(), "mailgun.key", []byte(key+"\n"))
	if res := r.cli("", "smarthost", "update", "mg", "--webhook-signing-key-file", keyFile); res.Code != 0 || strings.Contains(res.Stdout, key) {
		t.Fatalf("smarthost update: %s", res)
	}

	c, err := r.login(true, sender, "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("From: " + sender + "\r\nTo: " + gone + "\r\nSubject: hello\r\nMessage-ID: <" + msgID + ">\r\n\r\nhello\r\n")
	id, err := sendMessage(c, sender, []string{gone}, msg)
	if err != nil {
		t.Fatal(err)
	}
	timeline := func() []events.Event {
		var all []events.Event
		res := r.cli("", "events", "--json")
		for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
			var e events.Event
			if json.Unmarshal([]byte(line), &e) == nil && e.Message == id {
				all = append(all, e)
			}
		}
		return all
	}
	has := func(kind events.Kind) bool {
		for _, e := range timeline() {
			if e.Kind == kind {
				return true
			}
		}
		return false
	}
	waitUntil(t, 30*time.Second, "the message to be relayed", func() bool { return has(events.Relayed) })

	// Mailgun's documented "failed / permanent" event for our message.
	reason := "5.1.1 The email account that you tried to reach does not exist."
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(ts + "e2e-token-1"))
	body, _ := json.Marshal(map[string]any{
		"signature": map[string]string{"timestamp": ts, "token": "e2e-token-1", "signature": hex.EncodeToString(mac.Sum(nil))},
		"event-data": map[string]any{
			"event": "failed", "severity": "permanent", "reason": "bounce", "id": "G9Bn5sl1TC6nu79C8C0bwg",
			"timestamp": float64(time.Now().Unix()), "recipient": gone,
			"message":         map[string]any{"headers": map[string]string{"message-id": msgID}},
			"delivery-status": map[string]any{"code": 550, "message": reason, "attempt-no": 1},
		},
	})
	post := func() int {
		resp, err := http.Post("http://"+hooksAddr+"/hooks/mg/mailgun", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}

	if !has(events.ProviderBounced) {
		t.Fatalf("the message's timeline lacks the provider's bounce: %+v", timeline())
	}
	// The message's page (GET /api/messages/{id}) shows the bounce with
	// Mailgun's reply, attributed to the smarthost it came through.
	if !pageShowsBounce(r.messagePage(t, id), gone, "550 "+reason) {
		t.Fatalf("GET /api/messages/%s lacks the provider's bounce with Mailgun's reply %q: %+v", id, "550 "+reason, r.messagePage(t, id).Events)
	}
	var list []suppression.Entry
	if res := r.cli("", "suppression", "list", "--json"); res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &list) != nil ||
		len(list) != 1 || list[0].Addr != gone || list[0].Kind != suppression.Bounce {
		t.Fatalf("suppression list: %s", res)
	}
	if err := c.Mail(sender, nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(gone, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || !strings.Contains(se.Message, "does not exist") {
		t.Fatalf("RCPT to the suppressed recipient: %v", err)
	}
	if code := post(); code != http.StatusConflict {
		t.Fatalf("the same request again: %d, want 409", code)
	}
	// The app hears of the bounce through its own signed webhook.
	waitUntil(t, 30*time.Second, "the app's endpoint to receive the provider's bounce", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range appGot {
			if p.Type == "message."+string(events.ProviderBounced) && p.Data.Recipient == gone && p.Data.Message == id {
				return true
			}
		}
		return false
	})
}

// messagePage is GET /api/messages/{id} on r's admin listener, with the
// admin token: the message with its timeline, as the message's page shows
// it.
func (r *relay) messagePage(t *testing.T, id string) admin.MessageDetail {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(r.DataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+r.AdminAddr+"/api/messages/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d admin.MessageDetail
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/messages/%s: %d, %v", id, resp.StatusCode, err)
	}
	return d
}

// pageShowsBounce reports whether d's timeline has the provider's
// permanent bounce for rcpt with reply, through smarthost mg.
func pageShowsBounce(d admin.MessageDetail, rcpt, reply string) bool {
	for _, e := range d.Events {
		if e.Kind == events.ProviderBounced && e.Recipient == rcpt && e.Reply == reply && e.Upstream == "mg" &&
			strings.HasPrefix(e.Detail, "permanent") {
			return true
		}
	}
	return false
}
