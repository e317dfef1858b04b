package delivery_test

import (
	"bytes"
	"io"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/delivery"
	"outbound/queue"
	"outbound/route"
)

// These tests send notifications (DSNs) through upstreams that, like
// Mailgun and Amazon SES, take mail only from the domains verified with
// them: the notification must leave through the original message's route,
// from the null reverse-path, with a header From in the sender's domain.

// provider is a go-smtp upstream that behaves like a hosted provider: a
// sender (MAIL FROM) or header From outside its verified domains is
// refused, and so is any recipient in unknown. With refuseNull it refuses
// the null reverse-path too, as some providers do.
type provider struct {
	verified   []string
	unknown    []string
	refuseNull bool

	mu       sync.Mutex
	received []providerMail
}

// providerMail is one message the provider accepted.
type providerMail struct {
	from   string // MAIL FROM, "" for <>
	to     []string
	header mail.Header
}

func (p *provider) isVerified(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	for _, d := range p.verified {
		if at >= 0 && strings.EqualFold(addr[at+1:], d) {
			return true
		}
	}
	return false
}

func (p *provider) NewSession(*smtp.Conn) (smtp.Session, error) { return &providerSession{p: p}, nil }

func (p *provider) mails() []providerMail {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]providerMail(nil), p.received...)
}

// waitMail waits for a message from the envelope sender from ("" for <>).
func (p *provider) waitMail(t *testing.T, from string) providerMail {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range p.mails() {
			if m.from == from {
				return m
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no message from <%s> within 5s; received %+v", from, p.mails())
	return providerMail{}
}

type providerSession struct {
	p   *provider
	msg providerMail
}

func (s *providerSession) Mail(from string, _ *smtp.MailOptions) error {
	switch {
	case from == "" && s.p.refuseNull:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "null sender not accepted"}
	case from != "" && !s.p.isVerified(from):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender domain is not verified for this account"}
	}
	s.msg = providerMail{from: from}
	return nil
}

func (s *providerSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	for _, u := range s.p.unknown {
		if strings.EqualFold(u, to) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
		}
	}
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *providerSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "malformed message"}
	}
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil || !s.p.isVerified(from.Address) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "From header domain is not verified for this account"}
	}
	s.msg.header = m.Header
	s.p.mu.Lock()
	s.p.received = append(s.p.received, s.msg)
	s.p.mu.Unlock()
	return nil
}

func (s *providerSession) Reset()        { s.msg = providerMail{} }
func (s *providerSession) Logout() error { return nil }

// startProvider serves p on 127.0.0.1 and describes it as an upstream
// named name.
func startProvider(t *testing.T, name string, p *provider) *route.Upstream {
	host, port := serve(t, p, nil, false, nil)
	return &route.Upstream{Name: name, Host: host, Port: port, TLSMode: "none"}
}

// addRouted queues a message from sender, of user sender, on route.
func addRouted(t *testing.T, q *queue.Queue, routeName string, rcpts ...string) *queue.Message {
	t.Helper()
	m := &queue.Message{User: sender, From: sender, Route: routeName}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, queue.Recipient{Addr: r, Status: queue.Queued})
	}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return m
}

// notificationsIn returns the queued messages from <>.
func notificationsIn(t *testing.T, q *queue.Queue) []*queue.Message {
	t.Helper()
	msgs, err := q.List(func(m *queue.Message) bool { return m.From == "" })
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestDSNLeavesThroughTheOriginalRouteFromNullSenderAndSenderDomain(t *testing.T) {
	// The user's own provider knows only the user's domain; the default
	// route would take anything, and must not be used.
	own := &provider{verified: []string{"example.com"}, unknown: []string{"nobody@example.net"}}
	shared := &provider{verified: []string{"example.com", "relay.test"}}
	rs := routes{"": startProvider(t, "default", shared), "own-alice": startProvider(t, "own-alice", own)}
	q := newQueue(t)
	m := addRouted(t, q, "own-alice", "nobody@example.net")
	startDelivery(t, q, rs, delivery.Options{})

	dsn := own.waitMail(t, "")
	if !sameStrings(dsn.to, []string{sender}) {
		t.Errorf("notification went to %v, want the original sender %s", dsn.to, sender)
	}
	from, err := mail.ParseAddress(dsn.header.Get("From"))
	if err != nil || from.Address != "postmaster@example.com" {
		t.Errorf("header From %q, want postmaster at the sender's domain", dsn.header.Get("From"))
	}
	if got := dsn.header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("Auto-Submitted %q, want auto-replied (RFC 3834)", got)
	}
	if got := shared.mails(); len(got) != 0 {
		t.Errorf("the default route got %d messages; the notification must leave through the original's route", len(got))
	}
	waitFor(t, q, m.ID, "failed", finished)
}

func TestDSNHeaderFromIsConfigurable(t *testing.T) {
	up := &provider{verified: []string{"example.com"}, unknown: []string{"nobody@example.net"}}
	q := newQueue(t)
	addRouted(t, q, "", "nobody@example.net")
	startDelivery(t, q, routes{"": startProvider(t, "default", up)}, delivery.Options{
		DSN: delivery.DSNOptions{From: "bounces@{domain}"}})

	dsn := up.waitMail(t, "")
	if from, err := mail.ParseAddress(dsn.header.Get("From")); err != nil || from.Address != "bounces@example.com" {
		t.Errorf("header From %q, want bounces@example.com from dsn.from", dsn.header.Get("From"))
	}
}

func TestDSNUsesTheFallbackSenderWhenTheUpstreamRefusesNullSender(t *testing.T) {
	up := &provider{verified: []string{"example.com"}, unknown: []string{"nobody@example.net"}, refuseNull: true}
	q := newQueue(t)
	addRouted(t, q, "", "nobody@example.net")
	startDelivery(t, q, routes{"": startProvider(t, "default", up)}, delivery.Options{
		DSN: delivery.DSNOptions{FallbackSender: "postmaster@{domain}"}})

	dsn := up.waitMail(t, "postmaster@example.com")
	if !sameStrings(dsn.to, []string{sender}) || dsn.header.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("fallback notification to %v with Auto-Submitted %q", dsn.to, dsn.header.Get("Auto-Submitted"))
	}
	// In the queue it is still a message from <>: nothing is ever
	// reported about it.
	dsns := notificationsIn(t, q)
	if len(dsns) != 1 {
		t.Fatalf("%d notifications in the queue, want 1", len(dsns))
	}
	waitFor(t, q, dsns[0].ID, "delivered", func(m *queue.Message) bool { return m.Recipients[0].Status == queue.Delivered })
}

func TestNoDSNAboutADSN(t *testing.T) {
	// The sender's own address is unknown too: the notification fails,
	// and that failure is reported to nobody.
	up := &provider{verified: []string{"example.com"}, unknown: []string{"nobody@example.net", sender}}
	q := newQueue(t)
	addRouted(t, q, "", "nobody@example.net")
	startDelivery(t, q, routes{"": startProvider(t, "default", up)}, delivery.Options{})

	deadline := time.Now().Add(5 * time.Second)
	for {
		dsns := notificationsIn(t, q)
		if len(dsns) == 1 && !dsns[0].Pending() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the notification did not fail within 5s: %d in the queue", len(dsns))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A notification about it would have been queued in the same update.
	if dsns := notificationsIn(t, q); len(dsns) != 1 {
		t.Fatalf("%d messages from <> in the queue, want only the first notification", len(dsns))
	}
}

func TestNoDSNForAMessageFromNullSender(t *testing.T) {
	up := &provider{verified: []string{"example.com"}, unknown: []string{"nobody@example.net"}}
	q := newQueue(t)
	m := &queue.Message{From: "", Recipients: []queue.Recipient{{Addr: "nobody@example.net", Status: queue.Queued}}}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	startDelivery(t, q, routes{"": startProvider(t, "default", up)}, delivery.Options{})
	waitFor(t, q, m.ID, "failed", finished)
	if dsns := notificationsIn(t, q); len(dsns) != 1 {
		t.Fatalf("%d messages from <> in the queue, want only the original", len(dsns))
	}
}

func TestNoDSNWhenTheUserTurnedThemOff(t *testing.T) {
	up := &provider{verified: []string{"example.com"}, unknown: []string{"nobody@example.net"}}
	q := newQueue(t)
	m := addRouted(t, q, "", "nobody@example.net")
	var asked []string
	var mu sync.Mutex
	startDelivery(t, q, routes{"": startProvider(t, "default", up)}, delivery.Options{
		DSN: delivery.DSNOptions{Off: func(user string) bool {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, user)
			return user == sender
		}}})
	waitFor(t, q, m.ID, "failed", finished)
	if dsns := notificationsIn(t, q); len(dsns) != 0 {
		t.Fatalf("%d notifications queued for a user who turned them off", len(dsns))
	}
	mu.Lock()
	defer mu.Unlock()
	if !sameStrings(asked, []string{sender}) {
		t.Errorf("asked about %v, want the message's user %s", asked, sender)
	}
}
