package relay

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/auth"
	"outbound/internal/dnstest"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/quota"
	"outbound/route"
	"outbound/spf"
)

// fixedPolicy gives every user the same route.Policy.
type fixedPolicy route.Policy

func (p fixedPolicy) Policy(*auth.User) route.Policy { return route.Policy(p) }

func withQuota(t *testing.T, lim quota.Limits) func(*Options) {
	return func(o *Options) {
		q, err := quota.Open(testutil.OpenDB(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Quota = q
		o.Routes = fixedPolicy{Limits: lim}
	}
}

func TestRecipientOverHourlyLimitGets450(t *testing.T) {
	h := startRelay(t, withQuota(t, quota.Limits{PerHour: 2, PerDay: 10}))
	c := h.login(t, true)
	if err := send(c, alice, []string{"a@example.net", "b@example.net"}, simpleMessage); err != nil {
		t.Fatal(err)
	}
	c.Mail(alice, nil)
	err := c.Rcpt("c@example.net", nil)
	wantCode(t, err, 450, smtp.EnhancedCode{4, 7, 1}, "hourly limit of 2 reached for alice@example.com; next slot in")
}

func TestRecipientsWithinOneMessageCountTowardsTheLimit(t *testing.T) {
	h := startRelay(t, withQuota(t, quota.Limits{PerHour: 2, PerDay: 2}))
	c := h.login(t, true)
	c.Mail(alice, nil)
	if err := c.Rcpt("a@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.net", nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt("c@example.net", nil), 450, smtp.EnhancedCode{4, 7, 1}, "limit of 2 reached")
}

func TestZeroLimitIsPermanent(t *testing.T) {
	h := startRelay(t, withQuota(t, quota.Limits{PerHour: 0, PerDay: 0}))
	c := h.login(t, true)
	c.Mail(alice, nil)
	wantCode(t, c.Rcpt("a@example.net", nil), 550, smtp.EnhancedCode{5, 7, 1}, "allows no sending")
}

// Twenty connections of one user race against a limit of 50: RCPT-time
// checks pass on many connections at once, and the atomic reservation at
// the end of DATA must still let exactly 50 through.
func TestConcurrentConnectionsNeverOversend(t *testing.T) {
	h := startRelay(t, withQuota(t, quota.Limits{PerHour: 50, PerDay: 50}))
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.DialTLS(h.implicitAddr, h.clientTLS)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := c.Auth(sasl.NewPlainClient("", alice, alicePw)); err != nil {
				t.Error(err)
				return
			}
			for j := 0; j < 5; j++ {
				err := send(c, alice, []string{fmt.Sprintf("r%d@example.net", j)}, simpleMessage)
				if err == nil {
					accepted.Add(1)
					continue
				}
				if se, ok := err.(*smtp.SMTPError); ok && se.Code == 450 {
					refused.Add(1)
					c.Reset()
					continue
				}
				t.Error(err)
				return
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 50 || h.spool.count() != 50 {
		t.Fatalf("accepted %d, queued %d, want exactly 50 (refused %d)", accepted.Load(), h.spool.count(), refused.Load())
	}
}

func TestReservationReleasedWhenQueueFails(t *testing.T) {
	h := startRelay(t, withQuota(t, quota.Limits{PerHour: 1, PerDay: 1}))
	h.spool.failing = true
	c := h.login(t, true)
	wantCode(t, send(c, alice, []string{"a@example.net"}, simpleMessage), 452, smtp.EnhancedCode{4, 3, 1}, "")
	h.spool.failing = false
	c.Reset()
	if err := send(c, alice, []string{"a@example.net"}, simpleMessage); err != nil {
		t.Fatalf("slot not given back after a failed queue write: %v", err)
	}
}

const spfZone = `$ORIGIN test.
$TTL 300
_spf.eu.mailgun  TXT "v=spf1 ip4:192.0.2.0/25 ~all"
aligned          TXT "v=spf1 include:_spf.eu.mailgun.test -all"
unaligned        TXT "v=spf1 include:sendgrid.test -all"
sendgrid         TXT "v=spf1 ip4:198.51.100.0/24 -all"
`

func withSPF(t *testing.T, policy spf.Policy) func(*Options) {
	return func(o *Options) {
		dns := dnstest.Start(t, spfZone)
		r, err := spf.NewResolver([]string{dns.Addr()}, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		o.SPF = &spf.Checker{Resolver: r}
		o.Routes = fixedPolicy{
			Limits:    quota.Limits{PerHour: 100, PerDay: 100},
			SPF:       spf.Identity{Name: "Mailgun EU", Include: "_spf.eu.mailgun.test"},
			SPFPolicy: policy,
		}
	}
}

func addSender(t *testing.T, h *harness, domains ...string) {
	t.Helper()
	if err := h.users.Update(alice, func(u *auth.User) error { u.AllowFrom = domains; return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestSPFEnforceRefusesUnalignedSenderWithFix(t *testing.T) {
	h := startRelay(t, withSPF(t, spf.PolicyEnforce))
	addSender(t, h, "aligned.test", "unaligned.test")
	c := h.login(t, true)
	err := c.Mail("news@unaligned.test", nil)
	wantCode(t, err, 550, smtp.EnhancedCode{5, 7, 23}, "unaligned.test's SPF does not authorize Mailgun EU; add include:_spf.eu.mailgun.test to its TXT record")
	c.Reset()
	if err := send(c, "news@aligned.test", []string{"bob@example.net"}, "From: news@aligned.test\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("aligned sender refused: %v", err)
	}
}

func TestSPFEnforceChecksHeaderFromDomainToo(t *testing.T) {
	h := startRelay(t, withSPF(t, spf.PolicyEnforce))
	addSender(t, h, "aligned.test", "unaligned.test")
	c := h.login(t, true)
	err := send(c, "bounces@aligned.test", []string{"bob@example.net"}, "From: news@unaligned.test\r\n\r\nhi\r\n")
	wantCode(t, err, 550, smtp.EnhancedCode{5, 7, 23}, "add include:_spf.eu.mailgun.test")
}

func TestSPFWarnAcceptsAndMarksTheMessage(t *testing.T) {
	h := startRelay(t, withSPF(t, spf.PolicyWarn))
	addSender(t, h, "unaligned.test")
	c := h.login(t, true)
	if err := send(c, "news@unaligned.test", []string{"bob@example.net"}, "From: news@unaligned.test\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("warn policy refused: %v", err)
	}
	body := string(h.spool.bodies[0])
	if !strings.Contains(body, "X-Outbound-SPF: fail domain=unaligned.test; unaligned.test's SPF does not authorize Mailgun EU") {
		t.Fatalf("no SPF warning header:\n%s", body)
	}
}

// The quota count is made durable in the transaction that queues the
// message: with a real queue and quota on one bbolt file, a store opened
// afresh from the file (as after a restart) sees the count of every queued
// message.
func TestQuotaCountIsDurableWithTheQueuedMessage(t *testing.T) {
	db := testutil.OpenDB(t)
	lim := quota.Limits{PerHour: 10, PerDay: 10}
	h := startRelay(t, func(o *Options) {
		q, err := quota.Open(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		spool, err := queue.Open(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Quota, o.Spool = q, spool
		o.Routes = fixedPolicy{Limits: lim}
	})
	c := h.login(t, true)
	for range 2 {
		if err := send(c, alice, []string{"a@example.net", "b@example.net"}, simpleMessage); err != nil {
			t.Fatal(err)
		}
	}
	reopened, err := quota.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := reopened.Usage(alice, lim); u.LastHour != 4 {
		t.Fatalf("quota on disk counts %d recipients in the last hour, want 4", u.LastHour)
	}
	stats, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := stats.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages queued, want 2", len(msgs))
	}
}
