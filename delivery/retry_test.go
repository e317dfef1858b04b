package delivery

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/route"
)

// clock is a settable time source shared by the queue and delivery.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type rig struct {
	q     *queue.Queue
	d     *Deliverer
	clock *clock
	up    *route.Upstream
}

// newRig wires a real queue and a Deliverer to an upstream at addr, with
// time injected so that days can pass in a test.
func newRig(t *testing.T, host string, port int) *rig {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	q, err := queue.Open(testutil.OpenDB(t), c.Now)
	if err != nil {
		t.Fatal(err)
	}
	up := &route.Upstream{Name: "test", Host: host, Port: port, TLSMode: "none"}
	d := New(q, staticRouter{up}, Options{
		LocalName: "relay.test", Workers: 1, ConnectionsPerUpstream: 2,
		ConnectTimeout: 2 * time.Second, CommandTimeout: 5 * time.Second, IdleConnection: time.Minute,
		RetryDelay:   func(int) time.Duration { return time.Minute },
		MaxLifetime:  5 * 24 * time.Hour,
		DelayWarning: 4 * time.Hour,
		Now:          c.Now,
	})
	return &rig{q: q, d: d, clock: c, up: up}
}

type staticRouter struct{ up *route.Upstream }

func (r staticRouter) Upstream(string) (*route.Upstream, error) { return r.up, nil }

const testBody = "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: quarterly report\r\nMessage-ID: <m1@example.com>\r\n\r\nThe numbers are in.\r\n"

func (r *rig) add(t *testing.T, from string, notify []string, rcpts ...string) string {
	t.Helper()
	m := &queue.Message{From: from, User: "alice@example.com", Created: r.clock.Now()}
	for _, a := range rcpts {
		m.Recipients = append(m.Recipients, queue.Recipient{Addr: a, Status: queue.Queued, Notify: notify})
	}
	if err := r.q.Add(m, []byte(testBody)); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// attempt runs one delivery attempt for the message and returns its record.
func (r *rig) attempt(t *testing.T, id string) *queue.Message {
	t.Helper()
	m, err := r.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	r.d.attempt(m, make(chan struct{}))
	m, err = r.q.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dsns returns the notifications in the queue (messages from <>).
func (r *rig) dsns(t *testing.T) []*queue.Message {
	t.Helper()
	msgs, err := r.q.List(func(m *queue.Message) bool { return m.From == "" })
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func upstreamWith(t *testing.T, opts testutil.UpstreamOptions) *testutil.Upstream {
	return testutil.StartUpstream(t, opts)
}

// deliveryStatus parses a DSN and returns its per-recipient fields and the
// human-readable part.
func deliveryStatus(t *testing.T, dsn []byte) (perRecipient []textproto.MIMEHeader, human string, returned string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(dsn))
	if err != nil {
		t.Fatalf("DSN is not a message: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN content type %q %v", mt, params)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts int
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(p)
		parts++
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			human = string(data)
		case "message/delivery-status":
			tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
			if _, err := tp.ReadMIMEHeader(); err != nil { // per-message fields
				t.Fatal(err)
			}
			for {
				h, err := tp.ReadMIMEHeader()
				if len(h) > 0 {
					perRecipient = append(perRecipient, h)
				}
				if err != nil {
					break
				}
			}
		default:
			returned = string(data)
		}
	}
	if parts != 3 {
		t.Fatalf("DSN has %d parts, want 3", parts)
	}
	return perRecipient, human, returned
}

func TestPermanentFailureSendsDSNWithExactReply(t *testing.T) {
	reply := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "The email account that you tried to reach does not exist"}
	up := upstreamWith(t, testutil.UpstreamOptions{Rcpt: func(to string) error {
		if to == "nobody@example.net" {
			return reply
		}
		return nil
	}})
	r := newRig(t, up.Host, up.Port)
	id := r.add(t, "alice@example.com", nil, "bob@example.net", "nobody@example.net")
	m := r.attempt(t, id)
	if m.Recipients[0].Status != queue.Delivered || m.Recipients[1].Status != queue.Failed {
		t.Fatalf("statuses %+v", m.Recipients)
	}
	if m.Pending() || m.Finished.IsZero() {
		t.Fatal("message with only final recipients is not finished")
	}
	dsns := r.dsns(t)
	if len(dsns) != 1 {
		t.Fatalf("%d DSNs, want 1", len(dsns))
	}
	if dsns[0].Recipients[0].Addr != "alice@example.com" {
		t.Fatalf("DSN goes to %s, want the envelope sender", dsns[0].Recipients[0].Addr)
	}
	body, _ := r.q.Body(dsns[0].ID)
	fields, human, returned := deliveryStatus(t, body)
	if len(fields) != 1 {
		t.Fatalf("DSN reports %d recipients, want only the failed one", len(fields))
	}
	f := fields[0]
	if !strings.Contains(f.Get("Final-Recipient"), "nobody@example.net") || f.Get("Action") != "failed" || f.Get("Status") != "5.1.1" {
		t.Fatalf("recipient fields %v", f)
	}
	if diag := f.Get("Diagnostic-Code"); !strings.Contains(diag, "550 5.1.1 The email account that you tried to reach does not exist") {
		t.Fatalf("Diagnostic-Code %q lacks the exact reply", diag)
	}
	if !strings.Contains(human, "does not exist") {
		t.Fatalf("human part does not quote the reply:\n%s", human)
	}
	if !strings.Contains(returned, "Subject: quarterly report") || strings.Contains(returned, "The numbers are in.") {
		t.Fatalf("without RET=FULL the DSN must return the headers only:\n%s", returned)
	}
}

func TestTemporaryRepliesAreRetriedNotBounced(t *testing.T) {
	for name, reply := range map[string]*smtp.SMTPError{
		"mailbox full 552 5.2.2": {Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"},
		"blocklist 554":          {Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"},
		"greylisting 450":        {Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "Recipient address rejected: Greylisted, try again later"},
	} {
		t.Run(name, func(t *testing.T) {
			up := upstreamWith(t, testutil.UpstreamOptions{Rcpt: func(string) error { return reply }})
			r := newRig(t, up.Host, up.Port)
			id := r.add(t, "alice@example.com", nil, "bob@example.net")
			m := r.attempt(t, id)
			if m.Recipients[0].Status != queue.Queued {
				t.Fatalf("status %s, want queued for retry", m.Recipients[0].Status)
			}
			if !m.NextAttempt.After(r.clock.Now()) {
				t.Fatal("no later attempt scheduled")
			}
			if len(r.dsns(t)) != 0 {
				t.Fatal("a temporary failure generated a DSN")
			}
		})
	}
}

func TestGivesUpAfterMaxLifetimeWithLastReply(t *testing.T) {
	up := upstreamWith(t, testutil.UpstreamOptions{Rcpt: func(string) error { return testutil.ErrTemporary }})
	r := newRig(t, up.Host, up.Port)
	id := r.add(t, "alice@example.com", []string{"FAILURE"}, "bob@example.net")
	if m := r.attempt(t, id); m.Recipients[0].Status != queue.Queued {
		t.Fatal("first temporary failure ended delivery")
	}
	r.clock.Advance(5*24*time.Hour + time.Minute)
	m := r.attempt(t, id)
	if m.Recipients[0].Status != queue.Failed {
		t.Fatalf("after 5 days status %s, want failed", m.Recipients[0].Status)
	}
	if want := "gave up after 5 days: 451 4.3.0 try again later"; m.Recipients[0].Reply != want {
		t.Fatalf("reply %q, want %q", m.Recipients[0].Reply, want)
	}
	dsns := r.dsns(t)
	if len(dsns) != 1 {
		t.Fatalf("%d DSNs, want 1", len(dsns))
	}
	body, _ := r.q.Body(dsns[0].ID)
	fields, _, _ := deliveryStatus(t, body)
	if fields[0].Get("Action") != "failed" || !strings.HasPrefix(fields[0].Get("Status"), "4.") {
		t.Fatalf("expired recipient fields %v (want failed with a persistent transient 4.x.x status)", fields[0])
	}
}

func TestNextAttemptNeverPassesTheLifetime(t *testing.T) {
	up := upstreamWith(t, testutil.UpstreamOptions{Rcpt: func(string) error { return testutil.ErrTemporary }})
	r := newRig(t, up.Host, up.Port)
	r.d.opts.RetryDelay = func(int) time.Duration { return 4 * time.Hour }
	id := r.add(t, "alice@example.com", nil, "bob@example.net")
	r.clock.Advance(5*24*time.Hour - time.Hour)
	m := r.attempt(t, id)
	if end := m.Created.Add(5 * 24 * time.Hour); m.NextAttempt.After(end) {
		t.Fatalf("next attempt %s is after the end of the lifetime %s", m.NextAttempt, end)
	}
}

func TestDelayWarningSentOnceSayingUntilWhen(t *testing.T) {
	up := upstreamWith(t, testutil.UpstreamOptions{Rcpt: func(string) error { return testutil.ErrTemporary }})
	r := newRig(t, up.Host, up.Port)
	id := r.add(t, "alice@example.com", nil, "bob@example.net")
	r.attempt(t, id)
	if len(r.dsns(t)) != 0 {
		t.Fatal("delay notification before delay_warning")
	}
	r.clock.Advance(4*time.Hour + time.Minute)
	r.attempt(t, id)
	r.clock.Advance(time.Hour)
	r.attempt(t, id)
	dsns := r.dsns(t)
	if len(dsns) != 1 {
		t.Fatalf("%d delay notifications, want exactly 1", len(dsns))
	}
	body, _ := r.q.Body(dsns[0].ID)
	fields, _, _ := deliveryStatus(t, body)
	f := fields[0]
	if f.Get("Action") != "delayed" || !strings.HasPrefix(f.Get("Status"), "4.") || f.Get("Will-Retry-Until") == "" {
		t.Fatalf("delay fields %v", f)
	}
}

func TestSuccessDSNOnlyWhenAsked(t *testing.T) {
	up := upstreamWith(t, testutil.UpstreamOptions{})
	r := newRig(t, up.Host, up.Port)
	r.attempt(t, r.add(t, "alice@example.com", nil, "bob@example.net"))
	if len(r.dsns(t)) != 0 {
		t.Fatal("success DSN without NOTIFY=SUCCESS")
	}
	r.attempt(t, r.add(t, "alice@example.com", []string{"SUCCESS"}, "carol@example.net"))
	dsns := r.dsns(t)
	if len(dsns) != 1 {
		t.Fatalf("%d DSNs, want 1", len(dsns))
	}
	body, _ := r.q.Body(dsns[0].ID)
	fields, _, _ := deliveryStatus(t, body)
	if fields[0].Get("Action") != "delivered" || fields[0].Get("Status") != "2.0.0" {
		t.Fatalf("success fields %v", fields[0])
	}
}

func TestNotifyNeverSuppressesFailureDSN(t *testing.T) {
	up := upstreamWith(t, testutil.UpstreamOptions{Rcpt: func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}})
	r := newRig(t, up.Host, up.Port)
	m := r.attempt(t, r.add(t, "alice@example.com", []string{"NEVER"}, "bob@example.net"))
	if m.Recipients[0].Status != queue.Failed || len(r.dsns(t)) != 0 {
		t.Fatalf("NOTIFY=NEVER: status %s, %d DSNs", m.Recipients[0].Status, len(r.dsns(t)))
	}
}

func TestNoDSNAboutADSN(t *testing.T) {
	up := upstreamWith(t, testutil.UpstreamOptions{Rcpt: func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}})
	r := newRig(t, up.Host, up.Port)
	m := r.attempt(t, r.add(t, "", nil, "alice@example.com"))
	if m.Recipients[0].Status != queue.Failed {
		t.Fatal("bounce of a bounce not failed")
	}
	msgs, _ := r.q.List(nil)
	if len(msgs) != 1 {
		t.Fatalf("a failed notification generated %d more messages", len(msgs)-1)
	}
}

func TestDownUpstreamHoldsMessagesWithoutBurningAttempts(t *testing.T) {
	addr := testutil.FreePort(t)
	host, portStr, _ := net.SplitHostPort(addr)
	port := 0
	for _, c := range portStr {
		port = port*10 + int(c-'0')
	}
	r := newRig(t, host, port)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, r.add(t, "alice@example.com", nil, "bob@example.net"))
	}
	for _, id := range ids {
		r.attempt(t, id)
	}
	attempted := 0
	for _, id := range ids {
		m, _ := r.q.Get(id)
		if m.Recipients[0].Status != queue.Queued {
			t.Fatalf("message %s not queued: %s", id, m.Recipients[0].Status)
		}
		if m.Recipients[0].Attempts > 0 {
			attempted++
		}
	}
	if attempted != 1 {
		t.Fatalf("%d messages burned an attempt against a down upstream, want 1 (the one that found it down)", attempted)
	}
	// Once the backoff is over, the next attempt goes through.
	testutil.StartUpstreamAt(t, addr, testutil.UpstreamOptions{})
	r.clock.Advance(time.Hour)
	if m := r.attempt(t, ids[1]); m.Recipients[0].Status != queue.Delivered {
		t.Fatalf("after the upstream came back: %s %s", m.Recipients[0].Status, m.Recipients[0].Reply)
	}
}

func Test421ThenSuccess(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	up := upstreamWith(t, testutil.UpstreamOptions{Data: func([]byte) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Try again later, closing connection"}
		}
		return nil
	}})
	r := newRig(t, up.Host, up.Port)
	id := r.add(t, "alice@example.com", nil, "bob@example.net")
	if m := r.attempt(t, id); m.Recipients[0].Status != queue.Queued {
		t.Fatalf("421 not temporary: %s", m.Recipients[0].Status)
	}
	r.clock.Advance(time.Hour)
	if m := r.attempt(t, id); m.Recipients[0].Status != queue.Delivered {
		t.Fatalf("not delivered after the 421: %s", m.Recipients[0].Reply)
	}
	if got := up.Messages(); len(got) != 1 {
		t.Fatalf("upstream got %d messages, want 1", len(got))
	}
}

// dropMidData is a scripted upstream that accepts the envelope and then
// closes the connection in the middle of DATA.
func dropMidData(t *testing.T) (string, int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				io.WriteString(c, "220 drop.test ESMTP\r\n")
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
					case "EHLO":
						io.WriteString(c, "250-drop.test\r\n250 8BITMIME\r\n")
					case "DATA":
						io.WriteString(c, "354 go ahead\r\n")
						br.ReadString('\n') // one line of the message, then hang up
						return
					default:
						io.WriteString(c, "250 ok\r\n")
					}
				}
			}()
		}
	}()
	a := l.Addr().(*net.TCPAddr)
	return "127.0.0.1", a.Port
}

func TestDroppedConnectionMidDataIsTemporary(t *testing.T) {
	host, port := dropMidData(t)
	r := newRig(t, host, port)
	m := r.attempt(t, r.add(t, "alice@example.com", nil, "bob@example.net"))
	if m.Recipients[0].Status != queue.Queued || len(r.dsns(t)) != 0 {
		t.Fatalf("dropped connection: status %s, %d DSNs", m.Recipients[0].Status, len(r.dsns(t)))
	}
}

func TestRetryDelayHasJitter(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		j := jitter(time.Minute)
		if j < -time.Minute || j > time.Minute {
			t.Fatalf("jitter %s out of range", j)
		}
		seen[j] = true
	}
	if len(seen) < 2 {
		t.Fatal("jitter is constant")
	}
}

func TestDefaultUpstreamBackoffGrowsAndCaps(t *testing.T) {
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute}
	for i, w := range want {
		if got := defaultUpstreamBackoff(i + 1); got != w {
			t.Errorf("backoff after %d failures = %s, want %s", i+1, got, w)
		}
	}
}
