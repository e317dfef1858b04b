package e2e

// Issue 21: "a provider webhook arriving at any node finds its message".
// One node relays a message and learns the provider's id from the
// upstream's 250; the provider's webhook for that id reaches another node,
// which must find the message in the shared index, put the event on its
// timeline (seen from both nodes) and suppress the recipient on every node.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/admin"
	"outbound/events"
	"outbound/internal/pgtest"
	"outbound/internal/testutil"
	"outbound/providerhooks"
)

// Node a relays a message through smarthost gen, whose 250 names the
// provider's id; once a's events are in the shared log (node b lists the
// relayed event), the provider's signed generic webhook reporting a hard
// bounce for that provider id is posted to node b's provider_webhooks
// listener. Node b answers 200 with the event recorded (not unmatched),
// the bounce is on the message's timeline on a and on b, and node a
// refuses RCPT to the recipient within two seconds of b's answer.
func TestClusterProviderHookOnAnotherNodeFindsItsMessage(t *testing.T) {
	const (
		gone      = "gone@example.net"
		secret    = "generic bridge secret for the cluster e2e 0123456789"
		provID    = "PRV7cluster4BQk2x1zZ3z9"
		messageID = "cluster-providerhook-1@example.com"
		reply     = "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"
	)
	dsn := pgtest.Shared(t).NewDatabase(t)
	// The provider: accepts the message and names it by its own id, as
	// Postfix-based providers (SendGrid, Postmark) do in their 250.
	got := make(chan []byte, 8)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{Data: func(data []byte) error {
		select {
		case got <- data:
		default:
		}
		return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + provID}
	}})

	hooks := map[string]string{"a": testutil.FreePort(t), "b": testutil.FreePort(t)}
	var nodes []*relay
	for _, name := range []string{"a", "b"} {
		n := newNode(t, up.Addr(), dsn, name)
		n.cfg.set("provider_webhooks", "listen", q(hooks[name]))
		if len(nodes) > 0 {
			copySecretsKey(t, nodes[0], n)
		}
		n.start()
		nodes = append(nodes, n)
	}
	a, b := nodes[0], nodes[1]

	a.addUser(clusterUser, clusterPass)
	a.addLoopbackSmarthost("gen", up)
	secretFile := testutil.WriteFile(t, t.TempDir(), "bridge.secret", []byte(secret+"\n"))
	if res := a.cli("", "smarthost", "update", "gen", "--generic-webhook-secret-file", secretFile); res.Code != 0 || strings.Contains(res.Stdout, secret) {
		t.Fatalf("smarthost update on node a: %s", res)
	}
	if res := a.cli("", "user", "route", clusterUser, "--smarthost", "gen"); res.Code != 0 {
		t.Fatalf("user route on node a: %s", res)
	}

	// The session on node a stays open: the suppression must reach a
	// node that is already serving the sender.
	s, err := a.login(false, clusterUser, clusterPass)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := []byte("From: " + clusterUser + "\r\nTo: " + gone + "\r\nSubject: to be bounced\r\nMessage-ID: <" + messageID + ">\r\n\r\nhello\r\n")
	id, err := sendMessage(s, clusterUser, []string{gone}, msg)
	if err != nil {
		t.Fatalf("sending through node a: %v", err)
	}
	select {
	case data := <-got:
		if !bytes.Contains(data, []byte(messageID)) {
			t.Fatalf("the upstream received another message than %s:\n%s", id, data)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("node a did not deliver %s to the upstream within 30s", id)
	}
	waitUntil(t, 30*time.Second, "node b's GET /api/events to show the relayed event node a shipped", func() bool {
		for _, e := range b.eventsOf(clusterUser) {
			if e.Message == id && e.Kind == string(events.Relayed) {
				return true
			}
		}
		return false
	})
	if !hasEvent(a.messagePage(t, id), func(e events.Event) bool { return e.Kind == events.Relayed && e.ProviderID == provID }) {
		t.Fatalf("the relayed event of %s lacks the provider id %q of the upstream's 250: %+v", id, provID, a.messagePage(t, id).Events)
	}

	// The provider's hard bounce, naming the message by its id only (so
	// the provider-id index answers, not the Message-ID's), to node b.
	body, _ := json.Marshal(map[string]any{
		"provider_id": provID, "recipient": gone, "event": "bounced", "reply": reply, "permanent": true,
		"event_id": "cluster-e2e-bounce-1", "at": time.Now().UTC().Format(time.RFC3339),
	})
	status, res := postGeneric(t, hooks["b"], "gen", secret, body)
	answered := time.Now()
	if status != http.StatusOK || res.Recorded != 1 || res.Unmatched != 0 {
		t.Fatalf("node b answered the webhook %d %+v, want 200 with the event recorded (not unmatched)", status, res)
	}

	// Node a refuses the recipient within two seconds of b's answer.
	var last error
	for {
		if err := s.Mail(clusterUser, nil); err != nil {
			t.Fatal(err)
		}
		last = s.Rcpt(gone, nil)
		if isReply(last, 550, smtp.EnhancedCode{5, 1, 1}) {
			t.Logf("node a refused %s %s after node b answered the webhook", gone, time.Since(answered).Round(time.Millisecond))
			break
		}
		if last != nil {
			t.Fatalf("RCPT TO %s on node a after the bounce: %v, want 550 5.1.1 or (not yet) 250", gone, last)
		}
		if err := s.Reset(); err != nil {
			t.Fatal(err)
		}
		if time.Since(answered) > 2*time.Second {
			t.Fatalf("node a still accepts RCPT TO %s more than 2s after node b recorded the provider's hard bounce", gone)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(last.Error(), "User unknown") {
		t.Errorf("node a's refusal does not quote the provider's reply: %v", last)
	}

	// The bounce is on the message's timeline, seen from either node.
	bounced := func(e events.Event) bool {
		return e.Kind == events.ProviderBounced && e.Recipient == gone && e.Reply == reply && e.Upstream == "gen" &&
			strings.HasPrefix(e.Detail, "permanent")
	}
	for _, n := range []struct {
		name string
		r    *relay
	}{{"a", a}, {"b", b}} {
		var d admin.MessageDetail
		var code int
		waitUntil(t, 10*time.Second, "the provider's bounce on node "+n.name+"'s page of "+id, func() bool {
			d, code = n.r.messageDetail(id)
			return code == http.StatusOK && hasEvent(d, bounced)
		})
		t.Logf("node %s: GET /api/messages/%s has the provider's bounce (%d events, held by node %q)", n.name, id, len(d.Events), d.Node)
	}
}

// hasEvent says whether d's timeline has an event that match accepts.
func hasEvent(d admin.MessageDetail, match func(events.Event) bool) bool {
	for _, e := range d.Events {
		if match(e) {
			return true
		}
	}
	return false
}

// postGeneric POSTs body to /hooks/SMARTHOST/generic on the provider
// webhook listener at addr, signed with secret as a bridge signs it; it
// returns the status and, on 200, the counts answered.
func postGeneric(t *testing.T, addr, smarthost, secret string, body []byte) (int, struct{ Recorded, Unmatched, Duplicates, Ignored int }) {
	t.Helper()
	var res struct{ Recorded, Unmatched, Duplicates, Ignored int }
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequest("POST", "http://"+addr+"/hooks/"+smarthost+"/generic", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(providerhooks.GenericTimestampHeader, ts)
	req.Header.Set(providerhooks.GenericSignatureHeader, providerhooks.GenericSign(secret, ts, body))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST /hooks/%s/generic to %s: %v", smarthost, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			t.Fatalf("POST /hooks/%s/generic: the answer: %v", smarthost, err)
		}
	}
	return resp.StatusCode, res
}
