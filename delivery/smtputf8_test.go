package delivery_test

import (
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"outbound/delivery"
	"outbound/queue"
)

// A message the client sent with SMTPUTF8, through upstreams with and
// without the extension (go-smtp servers: SMTPUTF8 is offered only when
// EnableSMTPUTF8 is set).

// mailLog is an upstream backend that records each message it accepts
// and whether its MAIL asked for SMTPUTF8.
type mailLog struct {
	mu   sync.Mutex
	msgs []logged
}

type logged struct {
	from string
	utf8 bool
	to   []string
	data string
}

func (b *mailLog) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailLogSession{b: b}, nil }

func (b *mailLog) fromSender(from string) []logged {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []logged
	for _, m := range b.msgs {
		if m.from == from {
			out = append(out, m)
		}
	}
	return out
}

type mailLogSession struct {
	b   *mailLog
	msg logged
}

func (s *mailLogSession) Mail(from string, opts *smtp.MailOptions) error {
	s.msg = logged{from: from, utf8: opts != nil && opts.UTF8}
	return nil
}

func (s *mailLogSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *mailLogSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = string(data)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.msg)
	s.b.mu.Unlock()
	return nil
}

func (s *mailLogSession) Reset()        { s.msg = logged{} }
func (s *mailLogSession) Logout() error { return nil }

// utf8Upstream starts a mailLog upstream, offering SMTPUTF8 or not, and
// delivery to it.
func utf8Upstream(t *testing.T, offersSMTPUTF8 bool) (*mailLog, *queue.Queue) {
	t.Helper()
	b := &mailLog{}
	host, port := serve(t, b, nil, false, func(s *smtp.Server) { s.EnableSMTPUTF8 = offersSMTPUTF8 })
	q := newQueue(t)
	startDelivery(t, q, routes{"": {Name: "default", Host: host, Port: port, TLSMode: "none"}}, delivery.Options{})
	return b, q
}

// addUTF8 queues a message submitted with SMTPUTF8.
func addUTF8(t *testing.T, q *queue.Queue, from, body string, rcpts ...string) *queue.Message {
	t.Helper()
	m := &queue.Message{User: sender, From: from, UTF8: true}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, queue.Recipient{Addr: r, Status: queue.Queued})
	}
	if err := q.Add(m, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return m
}

// noticesTo returns the notifications queued for to.
func noticesTo(t *testing.T, q *queue.Queue, to string) []*queue.Message {
	t.Helper()
	dsns, err := q.List(func(m *queue.Message) bool { return m.From == "" && m.Recipients[0].Addr == to })
	if err != nil {
		t.Fatal(err)
	}
	return dsns
}

// Clients ask for SMTPUTF8 whatever the message: one that is all ASCII
// goes out without it.
func TestSMTPUTF8MessageThatIsASCIIGoesToAnUpstreamWithoutSMTPUTF8(t *testing.T) {
	b, q := utf8Upstream(t, false)
	// Non-ASCII in the body is fine: only addresses and header need SMTPUTF8.
	ascii := "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hello\r\n\r\nGrüße, Bob.\r\n"
	m := addUTF8(t, q, sender, ascii, "bob@example.net")

	got := waitFor(t, q, m.ID, "finished", finished)
	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Delivered || bob.Attempts != 1 {
		t.Fatalf("bob: %s", describe(got))
	}
	msgs := b.fromSender(sender)
	if len(msgs) != 1 || msgs[0].utf8 || msgs[0].data != ascii {
		t.Fatalf("upstream got %+v; want the exact message once, MAIL without SMTPUTF8", msgs)
	}
}

// A non-ASCII recipient cannot be delivered through an upstream without
// SMTPUTF8: it fails at once, permanently, with RFC 6531's 5.6.7, and the
// sender is told; the other recipients go out as usual.
func TestNonASCIIRecipientFailsPermanentlyWithoutUpstreamSMTPUTF8(t *testing.T) {
	b, q := utf8Upstream(t, false)
	m := addUTF8(t, q, sender, body, "bob@example.net", "josé@example.net")

	got := waitFor(t, q, m.ID, "finished", finished)
	if bob := recipient(t, got, "bob@example.net"); bob.Status != queue.Delivered {
		t.Errorf("bob: %s", describe(got))
	}
	jose := recipient(t, got, "josé@example.net")
	if jose.Status != queue.Failed || jose.DSNStatus != "5.6.7" || !strings.HasPrefix(jose.Reply, "553 5.6.7 ") || !strings.Contains(jose.Reply, "does not support SMTPUTF8") {
		t.Errorf("josé: %s %s %q; want failed at once with 553 5.6.7 saying the upstream lacks SMTPUTF8", jose.Status, jose.DSNStatus, jose.Reply)
	}
	if msgs := b.fromSender(sender); len(msgs) != 1 || !sameStrings(msgs[0].to, []string{"bob@example.net"}) || msgs[0].utf8 {
		t.Errorf("upstream got %+v; want one message to bob, without SMTPUTF8", msgs)
	}
	if n := len(noticesTo(t, q, sender)); n != 1 {
		t.Errorf("%d notifications to the sender, want 1", n)
	}
}

// A non-ASCII header or sender needs SMTPUTF8 for every recipient: the
// whole message fails permanently, and nothing is sent.
func TestNonASCIIHeaderOrSenderFailsPermanentlyWithoutUpstreamSMTPUTF8(t *testing.T) {
	for name, tc := range map[string]struct {
		from, body, reply string
	}{
		"header": {sender, "From: Jörg <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Grüße\r\n\r\nHi.\r\n", "554 5.6.9 "},
		"sender": {"jörg@example.com", body, "553 5.6.7 "},
	} {
		t.Run(name, func(t *testing.T) {
			b, q := utf8Upstream(t, false)
			m := addUTF8(t, q, tc.from, tc.body, "bob@example.net", "carol@example.net")

			got := waitFor(t, q, m.ID, "finished", finished)
			for _, r := range got.Recipients {
				if r.Status != queue.Failed || r.Attempts != 1 || !strings.HasPrefix(r.Reply, tc.reply) || !strings.Contains(r.Reply, "does not support SMTPUTF8") {
					t.Errorf("%s: %s after %d attempts, %q; want failed at once with %q", r.Addr, r.Status, r.Attempts, r.Reply, tc.reply)
				}
			}
			if msgs := b.fromSender(tc.from); len(msgs) != 0 {
				t.Errorf("upstream got %d copies, want none", len(msgs))
			}
			dsns := noticesTo(t, q, tc.from)
			if len(dsns) != 1 {
				t.Fatalf("%d notifications to the sender, want 1", len(dsns))
			}
			if want := strings.ContainsFunc(tc.from, func(r rune) bool { return r > 127 }); dsns[0].UTF8 != want {
				t.Errorf("notification to %s flagged SMTPUTF8 %v, want %v", tc.from, dsns[0].UTF8, want)
			}
		})
	}
}

// An upstream that offers SMTPUTF8 gets it asked for, non-ASCII addresses
// and all.
func TestSMTPUTF8IsAskedForWhenTheUpstreamOffersIt(t *testing.T) {
	b, q := utf8Upstream(t, true)
	m := addUTF8(t, q, sender, body, "josé@example.net")

	got := waitFor(t, q, m.ID, "finished", finished)
	if r := recipient(t, got, "josé@example.net"); r.Status != queue.Delivered {
		t.Fatalf("josé: %s", describe(got))
	}
	if msgs := b.fromSender(sender); len(msgs) != 1 || !msgs[0].utf8 || !sameStrings(msgs[0].to, []string{"josé@example.net"}) {
		t.Fatalf("upstream got %+v; want one message to josé with SMTPUTF8", msgs)
	}
}
