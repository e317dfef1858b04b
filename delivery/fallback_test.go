package delivery_test

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/delivery"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/route"
)

// Failover: a route's upstream with a Fallback. These tests run the real
// Deliverer against real upstreams on 127.0.0.1 and check where the message
// arrived (once, through one upstream), what the queue recorded, and that
// an upstream that must not be touched was not even connected to.

// viaBackup is how the attempt history names a failover.
const viaBackup = "backup (fallback of primary)"

// withFallback is a "primary" upstream at host:port whose fallback is
// "backup" at fbHost:fbPort, both without TLS.
func withFallback(host string, port int, fbHost string, fbPort int) *route.Upstream {
	return &route.Upstream{Name: "primary", Host: host, Port: port, TLSMode: "none",
		Fallback: &route.Upstream{Name: "backup", Host: fbHost, Port: fbPort, TLSMode: "none"}}
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(testutil.FreePort(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// scripted is a raw SMTP server for failures go-smtp's server cannot
// produce. It counts connections.
type scripted struct {
	host     string
	port     int
	conns    atomic.Int32
	messages atomic.Int32 // whole messages received (up to the final dot)
}

// scriptedUpstream starts one: "greet421" answers every connection with a
// 421 greeting and hangs up; "dropAfterDot" accepts the envelope and the
// whole message, then hangs up without replying to the final dot;
// "dropSecondAfterDot" accepts the first message on the connection with a
// 250 and hangs up after the second's final dot.
func scriptedUpstream(t *testing.T, mode string) *scripted {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &scripted{host: "127.0.0.1", port: l.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go s.session(c, mode)
		}
	}()
	return s
}

func (s *scripted) session(c net.Conn, mode string) {
	defer c.Close()
	if mode == "greet421" {
		io.WriteString(c, "421 4.3.2 scripted.test service not available, closing channel\r\n")
		return
	}
	br := bufio.NewReader(c)
	io.WriteString(c, "220 scripted.test ESMTP\r\n")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch strings.ToUpper(strings.Fields(line + " x")[0]) {
		case "EHLO":
			io.WriteString(c, "250-scripted.test\r\n250 8BITMIME\r\n")
		case "DATA":
			io.WriteString(c, "354 go ahead\r\n")
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			if n := s.messages.Add(1); mode == "dropAfterDot" || n > 1 {
				return // the whole message arrived: hang up without a reply
			}
			io.WriteString(c, "250 ok queued\r\n")
		default:
			io.WriteString(c, "250 ok\r\n")
		}
	}
}

// mailRefuser is a go-smtp backend that refuses every MAIL FROM with err.
type mailRefuser struct {
	err   error
	mails atomic.Int32
}

func (b *mailRefuser) NewSession(*smtp.Conn) (smtp.Session, error) { return b, nil }
func (b *mailRefuser) Mail(string, *smtp.MailOptions) error {
	b.mails.Add(1)
	return b.err
}
func (b *mailRefuser) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (b *mailRefuser) Data(io.Reader) error                 { return nil }
func (b *mailRefuser) Reset()                               {}
func (b *mailRefuser) Logout() error                        { return nil }

// releases records which messages delivery put back without attempting.
type releases struct {
	*queue.Queue
	ids chan string
}

func (r *releases) Release(id string, when time.Time) {
	r.Queue.Release(id, when)
	select {
	case r.ids <- id:
	default:
	}
}

// wantDeliveredVia checks that m was delivered to bob in one attempt that
// the history credits to via.
func wantDeliveredVia(t *testing.T, m *queue.Message, via string) {
	t.Helper()
	bob := recipient(t, m, "bob@example.net")
	if bob.Status != queue.Delivered || bob.Attempts != 1 || len(m.Attempts) != 1 {
		t.Fatalf("want bob delivered in one attempt: %s", describe(m))
	}
	if a := m.Attempts[0]; a.Upstream != via || a.Result != "ok" {
		t.Errorf("attempt recorded as via %q: %q; want via %q: ok", a.Upstream, a.Result, via)
	}
}

// The primary refuses connections: the same attempt delivers the message
// through the fallback, exactly once, and the history names the fallback.
func TestFallbackTakesTheMessageWhenThePrimaryRefusesConnections(t *testing.T) {
	backup := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	host, port := closedPort(t)
	q := newQueue(t)
	startDelivery(t, q, routes{"": withFallback(host, port, backup.Host, backup.Port)}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "finished", finished)
	wantDeliveredVia(t, got, viaBackup)
	msgs := fromSender(backup.Messages())
	if len(msgs) != 1 || string(msgs[0].Data) != body || !sameStrings(msgs[0].To, []string{"bob@example.net"}) {
		t.Fatalf("fallback got %d copies (want 1 to bob with the exact body)", len(msgs))
	}
}

// Temporary failures of the whole transaction before the primary could
// have taken the message, at every stage: each fails over, and the message
// arrives at the fallback once.
func TestFallbackAfterTemporaryWholeTransactionFailures(t *testing.T) {
	code421 := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many connections, closing"}
	for name, primary := range map[string]func(t *testing.T) (host string, port int, contacted func() bool){
		"421 greeting": func(t *testing.T) (string, int, func() bool) {
			s := scriptedUpstream(t, "greet421")
			return s.host, s.port, func() bool { return s.conns.Load() > 0 }
		},
		"421 at MAIL": func(t *testing.T) (string, int, func() bool) {
			b := &mailRefuser{err: code421}
			h, p := serve(t, b, nil, false, nil)
			return h, p, func() bool { return b.mails.Load() > 0 }
		},
		"451 at MAIL": func(t *testing.T) (string, int, func() bool) {
			b := &mailRefuser{err: testutil.ErrTemporary}
			h, p := serve(t, b, nil, false, nil)
			return h, p, func() bool { return b.mails.Load() > 0 }
		},
		"421 at RCPT": func(t *testing.T) (string, int, func() bool) {
			var rcpts atomic.Int32
			u := testutil.StartUpstream(t, testutil.UpstreamOptions{Rcpt: func(string) error { rcpts.Add(1); return code421 }})
			return u.Host, u.Port, func() bool { return rcpts.Load() > 0 }
		},
		"451 after the message": func(t *testing.T) (string, int, func() bool) {
			var refused atomic.Int32
			u := testutil.StartUpstream(t, testutil.UpstreamOptions{Data: func([]byte) error { refused.Add(1); return testutil.ErrTemporary }})
			return u.Host, u.Port, func() bool { return refused.Load() > 0 }
		},
	} {
		t.Run(name, func(t *testing.T) {
			host, port, contacted := primary(t)
			backup := testutil.StartUpstream(t, testutil.UpstreamOptions{})
			q := newQueue(t)
			startDelivery(t, q, routes{"": withFallback(host, port, backup.Host, backup.Port)}, delivery.Options{})

			m := add(t, q, body, "bob@example.net")
			got := waitFor(t, q, m.ID, "finished", finished)
			wantDeliveredVia(t, got, viaBackup)
			if !contacted() {
				t.Error("the primary was never tried")
			}
			if msgs := fromSender(backup.Messages()); len(msgs) != 1 {
				t.Errorf("fallback got %d copies, want 1", len(msgs))
			}
		})
	}
}

// A permanent refusal is final, whether for one recipient or for the whole
// transaction: no failover, the recipient fails with the primary's reply,
// and the fallback is not even connected to.
func TestNoFallbackAfterAPermanentRefusal(t *testing.T) {
	noSuchUser := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	senderRefused := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "sender not allowed"}
	for name, tc := range map[string]struct {
		primary func(t *testing.T) (host string, port int)
		reply   string
	}{
		"550 at RCPT": {func(t *testing.T) (string, int) {
			u := testutil.StartUpstream(t, testutil.UpstreamOptions{Rcpt: func(to string) error {
				if to == "bob@example.net" {
					return noSuchUser
				}
				return nil // the failure notice to the sender
			}})
			return u.Host, u.Port
		}, "550 5.1.1 no such user"},
		"550 at MAIL": {func(t *testing.T) (string, int) {
			return serve(t, &mailRefuser{err: senderRefused}, nil, false, nil)
		}, "550 5.7.1 sender not allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			host, port := tc.primary(t)
			backup := testutil.StartUpstream(t, testutil.UpstreamOptions{})
			q := newQueue(t)
			startDelivery(t, q, routes{"": withFallback(host, port, backup.Host, backup.Port)}, delivery.Options{})

			m := add(t, q, body, "bob@example.net")
			got := waitFor(t, q, m.ID, "finished", finished)
			if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Failed || bob.Reply != tc.reply {
				t.Errorf("bob: %s %q; want failed with the primary's %q", bob.Status, bob.Reply, tc.reply)
			}
			if len(got.Attempts) != 1 || got.Attempts[0].Upstream != "primary" {
				t.Errorf("history: %s; want one attempt via primary", describe(got))
			}
			// The failure notice to the sender goes through the same
			// primary next: it must not fail over either.
			time.Sleep(50 * time.Millisecond)
			if n := backup.Connections(); n != 0 {
				t.Errorf("the fallback was connected to %d times after a permanent refusal", n)
			}
		})
	}
}

// The primary accepts some recipients and refuses another temporarily:
// the message went out, so no failover; the refused recipient is retried
// later as usual.
func TestNoFallbackWhenThePrimaryAcceptedSomeRecipients(t *testing.T) {
	primary := testutil.StartUpstream(t, testutil.UpstreamOptions{Rcpt: func(to string) error {
		if to == "carol@example.net" {
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}
		}
		return nil
	}})
	backup := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	q := newQueue(t)
	startDelivery(t, q, routes{"": withFallback(primary.Host, primary.Port, backup.Host, backup.Port)}, delivery.Options{})

	m := add(t, q, body, "bob@example.net", "carol@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	if bob, carol := recipient(t, got, "bob@example.net"), recipient(t, got, "carol@example.net"); bob.Status != queue.Delivered || carol.Status != queue.Queued {
		t.Errorf("bob %s, carol %s; want delivered and queued: %s", bob.Status, carol.Status, describe(got))
	}
	if got.Attempts[0].Upstream != "primary" {
		t.Errorf("attempt via %q, want primary", got.Attempts[0].Upstream)
	}
	if n := backup.Connections(); n != 0 {
		t.Errorf("the fallback was connected to %d times", n)
	}
	if msgs := fromSender(primary.Messages()); len(msgs) != 1 || !sameStrings(msgs[0].To, []string{"bob@example.net"}) {
		t.Errorf("primary got %d transactions, want 1 for bob", len(msgs))
	}
}

// A primary that works takes the message; the fallback sees nothing.
func TestNoFallbackWhenThePrimaryAccepts(t *testing.T) {
	primary := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	backup := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	q := newQueue(t)
	startDelivery(t, q, routes{"": withFallback(primary.Host, primary.Port, backup.Host, backup.Port)}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	wantDeliveredVia(t, waitFor(t, q, m.ID, "finished", finished), "primary")
	if msgs := fromSender(primary.Messages()); len(msgs) != 1 {
		t.Errorf("primary got %d copies, want 1", len(msgs))
	}
	if n := backup.Connections(); n != 0 {
		t.Errorf("the fallback was connected to %d times", n)
	}
}

// The primary received the whole message and hung up before answering:
// it may have accepted it, so the fallback must not get a second copy.
func TestNoFallbackWhenThePrimaryMayHaveTheMessage(t *testing.T) {
	primary := scriptedUpstream(t, "dropAfterDot")
	backup := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	q := newQueue(t)
	startDelivery(t, q, routes{"": withFallback(primary.host, primary.port, backup.Host, backup.Port)}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Queued {
		t.Errorf("bob: %s %q; want queued for a later retry", bob.Status, bob.Reply)
	}
	if got.Attempts[0].Upstream != "primary" {
		t.Errorf("attempt via %q, want primary", got.Attempts[0].Upstream)
	}
	if n := backup.Connections(); n != 0 {
		t.Errorf("the fallback was connected to %d times after the primary got the whole message", n)
	}
}

// A reused connection that is lost after the whole message went out is not
// redialed to send the message again: the upstream may have it already.
func TestLostReplyOnReusedConnectionIsNotResent(t *testing.T) {
	up := scriptedUpstream(t, "dropSecondAfterDot")
	q := newQueue(t)
	startDelivery(t, q, routes{"": {Name: "primary", Host: up.host, Port: up.port, TLSMode: "none"}}, delivery.Options{})

	first := add(t, q, body, "bob@example.net")
	waitFor(t, q, first.ID, "delivered", attempted(1))
	second := add(t, q, body, "carol@example.net")
	got := waitFor(t, q, second.ID, "attempted", attempted(1))
	if carol := recipient(t, got, "carol@example.net"); carol.Status != queue.Queued {
		t.Errorf("carol: %s %q; want queued for a later retry", carol.Status, carol.Reply)
	}
	if n := up.messages.Load(); n != 2 {
		t.Fatalf("the upstream received %d whole messages, want 2: the second was sent again on a new connection", n)
	}
}

// While the primary is backed off, the next message goes straight to the
// fallback without touching the primary or burning an attempt on it.
func TestBackedOffPrimarySendsStraightToTheFallback(t *testing.T) {
	primary := scriptedUpstream(t, "greet421")
	backup := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	q := newQueue(t)
	startDelivery(t, q, routes{"": withFallback(primary.host, primary.port, backup.Host, backup.Port)}, delivery.Options{
		UpstreamBackoff: func(int) time.Duration { return time.Hour },
	})

	first := add(t, q, body, "bob@example.net")
	wantDeliveredVia(t, waitFor(t, q, first.ID, "finished", finished), viaBackup)
	if n := primary.conns.Load(); n != 1 {
		t.Fatalf("primary connected to %d times for the first message, want 1", n)
	}
	second := add(t, q, body, "bob@example.net")
	wantDeliveredVia(t, waitFor(t, q, second.ID, "finished", finished), viaBackup)
	if n := primary.conns.Load(); n != 1 {
		t.Errorf("primary connected to %d times in all, want 1: the second message should not try it while it is backed off", n)
	}
	if msgs := fromSender(backup.Messages()); len(msgs) != 2 {
		t.Errorf("fallback got %d messages, want 2", len(msgs))
	}
}

// Both down: the attempt that finds them down is recorded once, later
// messages wait without touching either, and nothing is sent anywhere.
func TestBothDownMessagesWait(t *testing.T) {
	primary := scriptedUpstream(t, "greet421")
	backup := scriptedUpstream(t, "greet421")
	q := &releases{Queue: newQueue(t), ids: make(chan string, 100)}
	startDelivery(t, q, routes{"": withFallback(primary.host, primary.port, backup.host, backup.port)}, delivery.Options{
		UpstreamBackoff: func(int) time.Duration { return time.Hour },
	})

	first := add(t, q.Queue, body, "bob@example.net")
	got := waitFor(t, q.Queue, first.ID, "attempted", attempted(1))
	bob := recipient(t, got, "bob@example.net")
	if bob.Status != queue.Queued || bob.Attempts != 1 || !strings.HasPrefix(bob.Reply, "421") {
		t.Errorf("bob: %s after %d attempts, %q; want queued after 1 with the 421", bob.Status, bob.Attempts, bob.Reply)
	}
	if len(got.Attempts) != 1 || got.Attempts[0].Upstream != viaBackup {
		t.Errorf("history %s; want one attempt, via %q (the last upstream tried)", describe(got), viaBackup)
	}
	if p, b := primary.conns.Load(), backup.conns.Load(); p != 1 || b != 1 {
		t.Fatalf("connections: primary %d, fallback %d; want one each", p, b)
	}

	second := add(t, q.Queue, body, "carol@example.net")
	deadline := time.After(5 * time.Second)
	for released := false; !released; {
		select {
		case id := <-q.ids:
			released = id == second.ID
		case <-deadline:
			t.Fatal("the second message was never put back to wait")
		}
	}
	got2, err := q.Get(second.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := recipient(t, got2, "carol@example.net"); r.Attempts != 0 || len(got2.Attempts) != 0 {
		t.Errorf("a message burned an attempt while both upstreams were backed off: %s", describe(got2))
	}
	if p, b := primary.conns.Load(), backup.conns.Load(); p != 1 || b != 1 {
		t.Errorf("connections: primary %d, fallback %d; want still one each", p, b)
	}
}

// Both refuse connections: the message stays queued and is retried; when
// they come back it is delivered, once in all, through whichever is tried.
func TestBothDownRetriedLaterDeliveredOnce(t *testing.T) {
	pHost, pPort := closedPort(t)
	bHost, bPort := closedPort(t)
	q := newQueue(t)
	startDelivery(t, q, routes{"": withFallback(pHost, pPort, bHost, bPort)}, delivery.Options{
		RetryDelay: func(int) time.Duration { return 50 * time.Millisecond },
	})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Queued {
		t.Fatalf("bob: %s %q; want queued while both are down", bob.Status, bob.Reply)
	}
	primary := testutil.StartUpstreamAt(t, net.JoinHostPort(pHost, strconv.Itoa(pPort)), testutil.UpstreamOptions{})
	backup := testutil.StartUpstreamAt(t, net.JoinHostPort(bHost, strconv.Itoa(bPort)), testutil.UpstreamOptions{})
	got = waitFor(t, q, m.ID, "finished", finished)

	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Delivered {
		t.Fatalf("bob: %s %q; want delivered", bob.Status, bob.Reply)
	}
	if p, b := len(fromSender(primary.Messages())), len(fromSender(backup.Messages())); p+b != 1 {
		t.Errorf("primary got %d copies and the fallback %d; want 1 in all", p, b)
	}
	oks := 0
	for _, a := range got.Attempts {
		if a.Upstream != "primary" && a.Upstream != viaBackup {
			t.Errorf("attempt via %q", a.Upstream)
		}
		if a.Result == "ok" {
			oks++
		}
	}
	if oks != 1 || got.Attempts[len(got.Attempts)-1].Result != "ok" {
		t.Errorf("history %s; want failed attempts, then one ok", describe(got))
	}
}

// Only one level of fallback: the fallback's own fallback is not tried.
func TestFallbackOfTheFallbackIsNotFollowed(t *testing.T) {
	third := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	pHost, pPort := closedPort(t)
	bHost, bPort := closedPort(t)
	up := withFallback(pHost, pPort, bHost, bPort)
	up.Fallback.Fallback = &route.Upstream{Name: "third", Host: third.Host, Port: third.Port, TLSMode: "none"}
	q := newQueue(t)
	startDelivery(t, q, routes{"": up}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "attempted", attempted(1))
	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Queued {
		t.Errorf("bob: %s; want queued", bob.Status)
	}
	if n := third.Connections(); n != 0 {
		t.Errorf("the fallback's fallback was connected to %d times", n)
	}
}

// A failure notice for a recipient the fallback refused names the
// fallback's host as Remote-MTA, not the primary's.
func TestFallbackRefusalDSNNamesTheFallbackHost(t *testing.T) {
	backup := testutil.StartUpstream(t, testutil.UpstreamOptions{Rcpt: func(to string) error {
		if to == "bob@example.net" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}})
	_, port := closedPort(t)
	q := newQueue(t)
	startDelivery(t, q, routes{"": withFallback("localhost", port, backup.Host, backup.Port)}, delivery.Options{})

	m := add(t, q, body, "bob@example.net")
	got := waitFor(t, q, m.ID, "finished", finished)
	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Failed || got.Attempts[0].Upstream != viaBackup {
		t.Fatalf("want bob failed via the fallback: %s", describe(got))
	}
	dsns, err := q.List(func(m *queue.Message) bool { return m.From == "" })
	if err != nil || len(dsns) != 1 {
		t.Fatalf("%d notifications (%v), want 1", len(dsns), err)
	}
	dsn, err := q.Body(dsns[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dsn), "Remote-MTA: dns; "+backup.Host) || strings.Contains(string(dsn), "localhost") {
		t.Errorf("notification does not name the fallback %s as Remote-MTA:\n%s", backup.Host, dsn)
	}
}
