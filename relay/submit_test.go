package relay

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"outbound/quota"
)

const submitMessage = "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"

func TestSubmitQueuesLikeSMTP(t *testing.T) {
	h := startRelay(t, nil)
	id, ref := h.backend.Submit(Submission{User: alice, From: alice, To: []string{"bob@example.net"},
		Message: []byte(submitMessage), RemoteIP: "192.0.2.1", Client: "app", Protocol: "HTTPSA"})
	if ref != nil {
		t.Fatal(ref)
	}
	if h.spool.count() != 1 || h.spool.msgs[0].ID != id {
		t.Fatalf("queued %d messages, want 1 with id %s", h.spool.count(), id)
	}
	body := string(h.spool.bodies[0])
	for _, want := range []string{"with HTTPSA id " + id, "Message-ID: <" + id + "@", "Date: "} {
		if !strings.Contains(body, want) {
			t.Errorf("queued message lacks %q:\n%s", want, body)
		}
	}
}

func TestSubmitRefusesAnotherUsersFrom(t *testing.T) {
	h := startRelay(t, nil)
	msg := strings.Replace(submitMessage, "From: alice@example.com", "From: mallory@evil.test", 1)
	_, ref := h.backend.Submit(Submission{User: alice, From: alice, To: []string{"bob@example.net"}, Message: []byte(msg)})
	if ref == nil || ref.Code != 550 || ref.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("refusal %v, want 550 5.7.1", ref)
	}
	if h.spool.count() != 0 {
		t.Fatal("a refused message was queued")
	}
}

func TestSubmitOverLimitCarriesRetryIn(t *testing.T) {
	h := startRelay(t, withQuota(t, quota.Limits{PerHour: 1, PerDay: 10}))
	sub := Submission{User: alice, From: alice, To: []string{"bob@example.net"}, Message: []byte(submitMessage)}
	if _, ref := h.backend.Submit(sub); ref != nil {
		t.Fatal(ref)
	}
	_, ref := h.backend.Submit(sub)
	if ref == nil || ref.Code != 450 || ref.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) || ref.RetryIn <= 0 {
		t.Fatalf("refusal %+v, want 450 4.7.1 with a RetryIn", ref)
	}
	if !strings.Contains(ref.Message, "hourly limit of 1 reached") {
		t.Errorf("message %q does not name the limit", ref.Message)
	}
}

func TestSubmitTooManyRecipients(t *testing.T) {
	h := startRelay(t, nil)
	_, ref := h.backend.Submit(Submission{User: alice, From: alice,
		To: []string{"a@x.net", "b@x.net", "c@x.net", "d@x.net", "e@x.net", "f@x.net"}, Message: []byte(submitMessage)})
	if ref == nil || ref.Code != 452 {
		t.Fatalf("refusal %v, want 452", ref)
	}
}

func TestSubmitTooLarge(t *testing.T) {
	h := startRelay(t, nil)
	big := submitMessage + strings.Repeat("x", 70<<10) + "\r\n"
	_, ref := h.backend.Submit(Submission{User: alice, From: alice, To: []string{"bob@example.net"}, Message: []byte(big)})
	if ref == nil || ref.Code != 552 {
		t.Fatalf("refusal %v, want 552", ref)
	}
}
