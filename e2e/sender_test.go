package e2e

import (
	"encoding/json"
	"net/mail"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// TestSenderSettingsFillWhatTheClientLeftOut: an operator gives a user a
// display name and a Reply-To with `user set`; `user show` reports them.
// A message whose From has no name and that has no Reply-To arrives
// upstream with both filled in, the rest of it unchanged; a message that
// sets both arrives exactly as the client wrote them.
func TestSenderSettingsFillWhatTheClientLeftOut(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.start()
	const user, pass = "billing@example.com", "billing-password-1"
	r.addUser(user, pass, "example.org")

	res := r.cli("", "user", "set", user, "--display-name", "Zoë Billing", "--reply-to", "help@example.org")
	if res.Code != 0 || !strings.Contains(res.Stdout, "updated user "+user) || !strings.Contains(res.Stdout, "Zoë Billing") {
		t.Fatalf("user set: %s", res)
	}
	res = r.cli("", "user", "show", user, "--json")
	var shown struct {
		Name        string   `json:"name"`
		AllowFrom   []string `json:"allow_from"`
		Route       string   `json:"route"`
		DisplayName string   `json:"display_name"`
		ReplyTo     string   `json:"reply_to"`
		Limits      struct {
			PerHour    int  `json:"per_hour"`
			PerDay     int  `json:"per_day"`
			Overridden bool `json:"overridden"`
		} `json:"limits"`
		Usage struct {
			SentLastHour  int `json:"sent_last_hour"`
			RemainingHour int `json:"remaining_hour"`
		} `json:"usage"`
		Smarthost *json.RawMessage `json:"smarthost"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &shown) != nil {
		t.Fatalf("user show --json: %s", res)
	}
	if shown.Name != user || shown.Route != "default" || strings.Join(shown.AllowFrom, ",") != "example.org" ||
		shown.DisplayName != "Zoë Billing" || shown.ReplyTo != "help@example.org" ||
		shown.Limits.PerHour != 10000 || shown.Limits.PerDay != 10000 || shown.Limits.Overridden ||
		shown.Usage.SentLastHour != 0 || shown.Usage.RemainingHour != 10000 || shown.Smarthost != nil {
		t.Fatalf("user show --json = %+v\n%s", shown, res.Stdout)
	}
	if res := r.cli("", "user", "show", user); res.Code != 0 || !strings.Contains(res.Stdout, "Display name:    Zoë Billing") ||
		!strings.Contains(res.Stdout, "Reply-To:        help@example.org") {
		t.Errorf("user show: %s", res)
	}

	c, err := r.login(false, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bare := []byte("From: billing@example.com\r\nTo: bob@example.net\r\nSubject: bare\r\n" +
		"X-Keep:  odd   spacing\r\n\r\nFrom: a body line\r\nReply-To: another body line\r\n")
	if _, err := sendMessage(c, user, []string{"bob@example.net"}, bare); err != nil {
		t.Fatalf("bare message: %v", err)
	}
	c.Reset()
	own := []byte("From: Accounts <accounts@example.org>\r\nReply-To: Sales <sales@example.org>\r\nTo: bob@example.net\r\n" +
		"Subject: own\r\n\r\nThe client's own.\r\n")
	if _, err := sendMessage(c, "accounts@example.org", []string{"bob@example.net"}, own); err != nil {
		t.Fatalf("message with its own name and Reply-To: %v", err)
	}

	got := bySubject(t, up.Wait(t, 2, 30*time.Second))
	if len(got["bare"]) != 1 || len(got["own"]) != 1 {
		t.Fatalf("upstream received %v", got)
	}
	b := got["bare"][0]
	from, err := b.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Zoë Billing" || from[0].Address != user {
		t.Errorf("bare message: From %q (%v), want the user's display name around %s", b.Header.Get("From"), err, user)
	}
	if !strings.HasPrefix(b.Header.Get("From"), "=?utf-8?") {
		t.Errorf("bare message: non-ASCII display name not RFC 2047-encoded: %q", b.Header.Get("From"))
	}
	if rt := b.Header["Reply-To"]; len(rt) != 1 || rt[0] != "help@example.org" {
		t.Errorf("bare message: Reply-To %q, want help@example.org", rt)
	}
	if b.Header.Get("X-Keep") != "odd   spacing" || string(b.Body) != "From: a body line\r\nReply-To: another body line\r\n" {
		t.Errorf("bare message: the rest changed: X-Keep %q, body %q", b.Header.Get("X-Keep"), b.Body)
	}

	o := got["own"][0]
	if from := o.Header["From"]; len(from) != 1 || from[0] != "Accounts <accounts@example.org>" {
		t.Errorf("own message: From %q, want the client's", from)
	}
	if rt := o.Header["Reply-To"]; len(rt) != 1 || rt[0] != "Sales <sales@example.org>" {
		t.Errorf("own message: Reply-To %q, want the client's", rt)
	}

	// Cleared settings apply no more.
	if res := r.cli("", "user", "set", user, "--display-name", "", "--reply-to", ""); res.Code != 0 {
		t.Fatalf("user set (clear): %s", res)
	}
	c.Reset()
	cleared := message(user, "bob@example.net", "cleared", "x")
	if _, err := sendMessage(c, user, []string{"bob@example.net"}, cleared); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
	got = bySubject(t, up.Wait(t, 3, 30*time.Second))
	if len(got["cleared"]) != 1 {
		t.Fatalf("upstream received %v", got)
	}
	cl := got["cleared"][0]
	if a, err := mail.ParseAddress(cl.Header.Get("From")); err != nil || a.Name != "" || cl.Header.Get("Reply-To") != "" {
		t.Errorf("after clearing: From %q, Reply-To %q; want them as sent", cl.Header.Get("From"), cl.Header.Get("Reply-To"))
	}
}
