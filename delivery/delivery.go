// Package delivery sends queued mail upstream: a bounded set of workers
// leases due messages from the queue, picks the message's upstream
// (its user's smarthost or the default route), sends over TLS with the
// upstream's credentials through a pool of reused connections, and records
// each recipient's outcome back in the queue. An upstream may have a
// fallback, which takes the attempts the upstream cannot: while it is
// backed off, or after it failed temporarily as a whole before it could
// have taken the message (Deliverer.deliver). That is failover, never
// fan-out: each attempt sends the message through one upstream.
//
// Failure rules, per recipient: a reply or error judged permanent ends
// delivery to that recipient (status failed); anything else — including
// errors we cannot classify — is temporary and the recipient is retried
// later. Delivery fails closed: when an upstream has credentials and does not
// offer TLS or AUTH, that is a temporary failure, never a plaintext send.
//
// Every message is judged on time, attempted or not: a recipient still
// queued when the message is MaxLifetime old fails ("gave up after 5
// days"), and the sender is told once when it is DelayWarning old, also
// while its upstream is backed off and the message merely waits.
//
// An attempt's outcome is kept until it is stored: when the queue cannot
// write it, the write is retried, never the delivery.
//
// This is the only package that dials smarthosts: to deliver, and for the
// step-by-step connection test an operator runs before saving one
// (ConnectionTest). Which upstream a message takes is package route's
// decision.
package delivery

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/bounce"
	"outbound/metrics"
	"outbound/queue"
	"outbound/route"
)

// Router names the upstream for a message's route ("" = default route)
// (package route).
type Router interface {
	Upstream(name string) (*route.Upstream, error)
}

var _ Router = (*route.Router)(nil)

// Queue is what delivery needs from the queue (package queue).
type Queue interface {
	Next(done <-chan struct{}) (*queue.Message, error)
	Body(id string) ([]byte, error)
	Update(m *queue.Message, additions ...queue.Addition) error
	Release(id string, when time.Time)
	Take(id string) (*queue.Message, error)
}

var _ Queue = (*queue.Queue)(nil)

// Options configures a Deliverer.
type Options struct {
	// LocalName is the EHLO name presented to upstreams.
	LocalName              string
	Workers                int
	ConnectionsPerUpstream int
	ConnectTimeout         time.Duration
	CommandTimeout         time.Duration
	IdleConnection         time.Duration
	// RetryDelay returns the wait before attempt n+1 after n attempts;
	// delivery adds ±10% jitter so that messages failed together do not
	// come back together.
	RetryDelay func(attempts int) time.Duration
	// MaxLifetime is how long a recipient is retried before it fails
	// permanently ("gave up after 5d").
	MaxLifetime time.Duration
	// DelayWarning is how long a recipient may be delayed before the
	// sender is told once; 0 disables delay notifications.
	DelayWarning time.Duration
	// UpstreamBackoff returns how long an upstream that failed as a whole
	// n times in a row is left alone (nil: 30s doubling up to 15m).
	UpstreamBackoff func(failures int) time.Duration
	// RecordRetry returns how long to wait before writing an attempt's
	// outcome again after the write failed n times in a row (nil: 1s
	// doubling up to 30s).
	RecordRetry func(failures int) time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Deliverer runs the delivery workers.
type Deliverer struct {
	q        Queue
	router   Router
	opts     Options
	log      *slog.Logger
	pool     *pool
	backoffs *backoffs
}

// New returns a Deliverer; Run starts it.
func New(q Queue, router Router, opts Options) *Deliverer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryDelay == nil {
		opts.RetryDelay = func(int) time.Duration { return time.Minute }
	}
	if opts.MaxLifetime == 0 {
		opts.MaxLifetime = 5 * 24 * time.Hour
	}
	if opts.UpstreamBackoff == nil {
		opts.UpstreamBackoff = defaultUpstreamBackoff
	}
	if opts.RecordRetry == nil {
		opts.RecordRetry = defaultRecordRetry
	}
	return &Deliverer{q: q, router: router, opts: opts, log: opts.Logger,
		pool:     newPool(opts.ConnectionsPerUpstream, opts.IdleConnection),
		backoffs: newBackoffs(opts.UpstreamBackoff)}
}

// Run delivers until done is closed, then waits for attempts in flight and
// closes pooled connections.
func (d *Deliverer) Run(done <-chan struct{}) {
	var wg sync.WaitGroup
	for i := 0; i < d.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(done)
		}()
	}
	tick := time.NewTicker(d.opts.IdleConnection)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			d.pool.closeIdle(false)
		case <-done:
			wg.Wait()
			d.pool.closeIdle(true)
			return
		}
	}
}

func (d *Deliverer) work(done <-chan struct{}) {
	for {
		m, err := d.q.Next(done)
		if errors.Is(err, queue.ErrStopped) {
			return
		}
		if err != nil {
			d.log.Error("queue read failed", "err", err)
			continue
		}
		d.attempt(m, done)
	}
}

// result is what became of one recipient in one attempt.
type result struct {
	err   error  // nil when delivered
	reply string // upstream reply or error text
}

// attempt makes one delivery attempt for every queued recipient of m,
// classifies each outcome and stores it, with any notifications it calls
// for, in one queue update.
func (d *Deliverer) attempt(m *queue.Message, done <-chan struct{}) {
	start := d.opts.Now()
	var rcpts []string
	for _, r := range m.Recipients {
		if r.Status == queue.Queued {
			rcpts = append(rcpts, r.Addr)
		}
	}
	up, err := d.router.Upstream(m.Route)
	upName, upHost := m.Route, ""
	var body []byte
	var results map[string]result
	if err == nil {
		upName, upHost = up.Name, up.Host
		// While an upstream is known to be down (and its fallback too, if
		// it has one), waiting messages are not attempted and burn no
		// attempts: they wait for one of them to come back.
		if until, down := d.heldUntil(up, start); down {
			d.hold(m, up, until, start, done)
			return
		}
		body, err = d.q.Body(m.ID)
		if err == nil && body == nil {
			err = errors.New("message body is missing from the queue")
		}
		if err == nil {
			var used *route.Upstream
			used, results, err = d.deliver(up, m, body, rcpts, done)
			if errors.Is(err, errStopped) {
				d.q.Release(m.ID, m.NextAttempt)
				return
			}
			upName, upHost = used.Name, used.Host
			if used != up {
				upName = fmt.Sprintf("%s (fallback of %s)", used.Name, up.Name)
			}
		}
	}
	now := d.opts.Now()
	elapsed := now.Sub(start)
	metrics.UpstreamLatency.WithLabelValues(upName).Observe(elapsed.Seconds())
	// An error for the whole attempt applies to every recipient in it.
	if err != nil {
		results = make(map[string]result, len(rcpts))
		for _, r := range rcpts {
			results[r] = result{err: err, reply: errorText(err)}
		}
	}

	n := notices{}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		res, ok := results[r.Addr]
		if !ok || r.Status != queue.Queued {
			continue
		}
		r.Attempts++
		r.Updated = now
		r.Reply = res.reply
		category := d.judge(m, r, res, now, &n)
		result := map[queue.Status]string{queue.Delivered: "delivered", queue.Failed: "failed", queue.Queued: "deferred"}[r.Status]
		metrics.Deliveries.WithLabelValues(upName, result, category).Inc()
		d.log.Info("delivery attempt", "id", m.ID, "user", m.User, "from", m.From, "rcpt", r.Addr,
			"upstream", upName, "status", r.Status, "reply", r.Reply, "duration", elapsed)
	}
	summary := "ok"
	if err != nil {
		summary = errorText(err)
	}
	m.RecordAttempt(queue.Attempt{At: start, Upstream: upName, Duration: elapsed, Result: summary})
	m.NextAttempt = d.nextAttempt(m, now)
	d.record(m, d.notifications(m, body, upHost, n, now), done)
}

// record stores an attempt's outcome and its notifications durably. When
// the write fails (a full disk, an I/O error) the outcome is kept here and
// the write is retried, with a growing pause, until it succeeds: the queue
// leaves the message leased to this worker meanwhile, so nobody attempts
// it again from the stale record on disk, which would send it again.
//
// If delivery stops before a write succeeds, the outcome is lost with the
// process and the message stays leased until then. After the restart the
// old record is all there is, so the message is attempted again and
// recipients the upstream had already accepted get it twice. That is the
// at-least-once delivery of package queue: a duplicate, never a loss.
func (d *Deliverer) record(m *queue.Message, additions []queue.Addition, done <-chan struct{}) {
	for failures := 1; ; failures++ {
		err := d.q.Update(m, additions...)
		if err == nil {
			if failures > 1 {
				d.log.Info("delivery outcome recorded after failed writes", "id", m.ID, "failed_writes", failures-1)
			}
			return
		}
		wait := d.opts.RecordRetry(failures)
		d.log.Error("recording delivery outcome failed; retrying the write, not the delivery", "id", m.ID, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-done:
			t.Stop()
			d.log.Error("delivery stopped before the outcome could be recorded; the message will be attempted again after the restart", "id", m.ID)
			return
		case <-t.C:
		}
	}
}

// defaultRecordRetry is 1s, 2s, 4s, 8s, 16s, then 30s while the queue
// cannot be written.
func defaultRecordRetry(failures int) time.Duration {
	d := time.Second
	for i := 1; i < failures && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// hold puts back, without an attempt, a message whose upstream (and its
// fallback, if any) is backed off: no attempt is burned while the upstream
// is known to be down. The message is judged on time all the same, as
// after a failed attempt (judgeAge): past MaxLifetime its queued recipients
// fail with their last reply, past DelayWarning the sender is told once.
// Otherwise a long outage would keep a backlog queued beyond its lifetime,
// and no sender would hear that their mail is late.
func (d *Deliverer) hold(m *queue.Message, up *route.Upstream, until, now time.Time, done <-chan struct{}) {
	// Back when the upstream is, give or take a little so that the
	// backlog does not return all at once; never after the end of the
	// lifetime, so that the message expires on time.
	when := until.Add(jitter(until.Sub(now)/4 + time.Second))
	if end := m.Created.Add(d.opts.MaxLifetime); when.After(end) {
		when = end
	}
	n := notices{}
	expired := 0
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status != queue.Queued {
			continue
		}
		reply := r.Reply
		if reply == "" {
			// Never attempted: the upstream was down all along.
			reply = "upstream backed off"
		}
		d.judgeAge(m, r, reply, now, &n)
		if r.Status != queue.Failed {
			continue
		}
		expired++
		r.Updated = now
		if r.DSNStatus == "" {
			r.DSNStatus = "4.4.7" // RFC 3463: delivery time expired
		}
		metrics.Deliveries.WithLabelValues(up.Name, "failed", string(bounce.Classify(0, "", reply).Category)).Inc()
		d.log.Info("gave up while the upstream is backed off", "id", m.ID, "user", m.User, "from", m.From, "rcpt", r.Addr,
			"upstream", up.Name, "status", r.Status, "reply", r.Reply)
	}
	if expired == 0 && len(n.delayed) == 0 {
		d.q.Release(m.ID, when)
		return
	}
	body, err := d.q.Body(m.ID)
	if err != nil {
		// The notifications go out without the original's headers.
		d.log.Error("reading the message for its notifications failed", "id", m.ID, "err", err)
	}
	m.NextAttempt = when
	d.record(m, d.notifications(m, body, "", n, now), done)
}

// heldUntil reports whether messages for up must wait, and until when: up
// is backed off and has no fallback, or its fallback is backed off too (then
// until is whichever of the two comes back first).
func (d *Deliverer) heldUntil(up *route.Upstream, now time.Time) (time.Time, bool) {
	until, down := d.backoffs.downUntil(connKey(up), now)
	if !down || up.Fallback == nil {
		return until, down
	}
	fbUntil, fbDown := d.backoffs.downUntil(connKey(up.Fallback), now)
	if !fbDown {
		return time.Time{}, false
	}
	if fbUntil.Before(until) {
		until = fbUntil
	}
	return until, true
}

// deliver sends m through up or, when up cannot take it in this attempt,
// through up.Fallback (failover, not fan-out: the message goes out through
// at most one of them). The fallback is used when up is backed off, or when
// up failed temporarily for the whole transaction before it could have
// taken the message (see mayFailOver) and the fallback is not backed off
// itself. Only one level is followed: the fallback's own Fallback is not.
//
// It returns the upstream whose outcome is this attempt's.
func (d *Deliverer) deliver(up *route.Upstream, m *queue.Message, body []byte, rcpts []string, done <-chan struct{}) (*route.Upstream, map[string]result, error) {
	fb := up.Fallback
	if _, down := d.backoffs.downUntil(connKey(up), d.opts.Now()); down && fb != nil {
		// heldUntil found the fallback up (another worker may have
		// marked it down since; then it is tried anyway, as ever).
		d.log.Debug("upstream backed off; delivering through its fallback", "id", m.ID, "upstream", up.Name, "fallback", fb.Name)
		results, err := d.try(fb, m, body, rcpts, done)
		return fb, results, err
	}
	results, err := d.try(up, m, body, rcpts, done)
	if fb == nil || !mayFailOver(err) {
		return up, results, err
	}
	if until, down := d.backoffs.downUntil(connKey(fb), d.opts.Now()); down {
		d.log.Info("upstream failed and its fallback is backed off too", "id", m.ID, "upstream", up.Name, "fallback", fb.Name, "fallback_until", until)
		return up, results, err
	}
	d.log.Warn("upstream failed; failing over to its fallback", "id", m.ID, "upstream", up.Name, "fallback", fb.Name, "err", errorText(err))
	results, err = d.try(fb, m, body, rcpts, done)
	return fb, results, err
}

// try runs one transaction through up and keeps up's backoff state: an
// upstream-wide failure backs it off, a completed transaction clears it.
func (d *Deliverer) try(up *route.Upstream, m *queue.Message, body []byte, rcpts []string, done <-chan struct{}) (map[string]result, error) {
	results, err := d.send(up, m, body, rcpts, done)
	switch {
	case errors.Is(err, errStopped):
	case isUpstreamWide(err):
		until := d.backoffs.failed(connKey(up), d.opts.Now())
		d.log.Warn("upstream unavailable; holding its messages", "upstream", up.Name, "until", until, "err", errorText(err))
	case err == nil:
		d.backoffs.succeeded(connKey(up))
	}
	return results, err
}

// mayFailOver reports whether a transaction that ended with err may be
// repeated through the fallback in the same attempt. Only an error for the
// whole transaction qualifies: a transaction that went through, with the
// message accepted or some recipients refused, yields per-recipient
// outcomes and no error. Only a temporary one: a permanent refusal is final
// wherever the message would go. And only when the upstream certainly does
// not have the message: not when the body went out in full and the
// connection was lost before its reply, so that failover never sends a
// message twice.
func mayFailOver(err error) bool {
	switch {
	case err == nil, errors.Is(err, errStopped):
		return false
	case isUnconfirmed(err):
		return false
	case isSetupError(err):
		// Not reached or not logged in to: never the message's fault.
		return true
	}
	return bounce.ClassifyError(err).Class == bounce.Temporary
}

// notices collects the recipients an attempt must report on, by kind.
type notices struct {
	failed, delayed, delivered []*queue.Recipient
}

// judge sets a recipient's status from one attempt's result and notes the
// notifications it calls for. Temporary failures are retried until the
// message is MaxLifetime old; then the recipient fails with the last reply.
//
// It returns the bounce category of a failure ("" on success).
func (d *Deliverer) judge(m *queue.Message, r *queue.Recipient, res result, now time.Time, n *notices) string {
	if res.err == nil {
		r.Status = queue.Delivered
		r.DSNStatus = "2.0.0"
		if wants(r, "SUCCESS") {
			n.delivered = append(n.delivered, r)
		}
		return ""
	}
	v := bounce.ClassifyError(res.err)
	if isSetupError(res.err) {
		// The upstream could not even be reached or logged in to: that is
		// never the recipient's fault, whatever the code said.
		v.Class = bounce.Temporary
		if strings.HasPrefix(v.Status, "5.") {
			v.Status = "4" + v.Status[1:]
		}
	}
	r.DSNStatus = v.Status
	if v.Class == bounce.Permanent {
		r.Status = queue.Failed
		if wants(r, "FAILURE") {
			n.failed = append(n.failed, r)
		}
		return string(v.Category)
	}
	d.judgeAge(m, r, res.reply, now, n)
	return string(v.Category)
}

// judgeAge judges on time a recipient that is still undelivered, after a
// temporary failure (judge) or without an attempt while its upstream is
// backed off (hold): once the message is MaxLifetime old the recipient
// fails with its last reply; once it is DelayWarning old the sender is
// told, once.
func (d *Deliverer) judgeAge(m *queue.Message, r *queue.Recipient, reply string, now time.Time, n *notices) {
	age := now.Sub(m.Created)
	switch {
	case age >= d.opts.MaxLifetime:
		r.Status = queue.Failed
		r.Reply = fmt.Sprintf("gave up after %s: %s", humanDays(d.opts.MaxLifetime), reply)
		if wants(r, "FAILURE") {
			n.failed = append(n.failed, r)
		}
	case d.opts.DelayWarning > 0 && !r.DelayNotified && age >= d.opts.DelayWarning && wants(r, "DELAY"):
		r.DelayNotified = true
		n.delayed = append(n.delayed, r)
	}
}

// wants reports whether the client's NOTIFY list asks for this kind of
// notification (RFC 3461). Without NOTIFY, failures and delays are
// reported and successes are not.
func wants(r *queue.Recipient, kind string) bool {
	if len(r.Notify) == 0 {
		return kind != "SUCCESS"
	}
	for _, k := range r.Notify {
		if strings.EqualFold(k, kind) {
			return true
		}
	}
	return false
}

// nextAttempt schedules the next try: the retry schedule with jitter, but
// never past the end of the message's lifetime, so that the last attempt
// happens when the lifetime ends and a still-failing recipient fails then.
func (d *Deliverer) nextAttempt(m *queue.Message, now time.Time) time.Time {
	attempts := 0
	for _, r := range m.Recipients {
		if r.Status == queue.Queued {
			attempts = max(attempts, r.Attempts)
		}
	}
	delay := d.opts.RetryDelay(attempts)
	next := now.Add(delay + jitter(delay/10))
	if end := m.Created.Add(d.opts.MaxLifetime); next.After(end) {
		next = end
	}
	return next
}

// jitter returns a random duration in [-max, +max].
func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(2*max))) - max
}

func humanDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// errStopped ends an attempt that never started because delivery is
// shutting down; the message goes back unchanged.
var errStopped = errors.New("delivery stopped")

// send runs one SMTP transaction for m. It returns per-recipient results,
// or an error that applies to all of them.
func (d *Deliverer) send(up *route.Upstream, m *queue.Message, body []byte, rcpts []string, done <-chan struct{}) (map[string]result, error) {
	key := connKey(up)
	c, ok := d.pool.acquire(key, done)
	if !ok {
		return nil, errStopped
	}
	reused := c != nil
	for {
		if c == nil {
			client, raw, err := dial(up, d.opts.LocalName, d.opts.ConnectTimeout, d.opts.CommandTimeout)
			if err != nil {
				d.pool.release(key, nil)
				return nil, &setupError{err}
			}
			c = &upstreamConn{Client: client, raw: raw}
		}
		results, keep, err := transact(c, m, body, rcpts, d.opts.CommandTimeout)
		if err != nil && reused && results == nil && staleConnection(err) {
			// A pooled connection the upstream closed (or is closing with
			// a 421 idle timeout) fails on its first command; that says
			// nothing about this message.
			c.Close()
			c, reused = nil, false
			continue
		}
		if !keep {
			c.Close()
			c = nil
		}
		d.pool.release(key, c)
		return results, err
	}
}

// staleConnection reports whether the first command on a reused connection
// failed because the connection is gone: a network error or a 421.
func staleConnection(err error) bool {
	if isUnconfirmed(err) {
		// The whole message went out before the connection failed: the
		// upstream may have it, so sending it again could duplicate it.
		return false
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	return true
}

// transact sends MAIL, RCPT for each recipient and DATA. keep reports
// whether the connection is in a clean state for reuse.
func transact(c *upstreamConn, m *queue.Message, body []byte, rcpts []string, timeout time.Duration) (results map[string]result, keep bool, err error) {
	opts := &smtp.MailOptions{Size: int64(len(body)), UTF8: m.UTF8}
	results = make(map[string]result, len(rcpts))
	if offered, _ := c.Extension("SMTPUTF8"); m.UTF8 && !offered {
		// Nothing was sent yet: the connection stays clean for reuse.
		if rcpts, err = withoutSMTPUTF8(m.From, rcpts, body, results); err != nil {
			return nil, true, err
		}
		if len(rcpts) == 0 {
			return results, true, nil
		}
		opts.UTF8 = false
	}
	if err := c.Mail(m.From, opts); err != nil {
		return nil, resetOK(c.Client, err), err
	}
	var accepted []string
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			// A 421 is the upstream closing the session, not a verdict on
			// this recipient: it ends the transaction, before any DATA.
			if !isSMTPError(err) || isClosing(err) {
				return nil, false, err
			}
			results[r] = result{err: err, reply: errorText(err)}
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return results, resetOK(c.Client, nil), nil
	}
	w, err := c.Data()
	if err != nil {
		return nil, resetOK(c.Client, err), err
	}
	// go-smtp sets no deadline while the body is written: an upstream that
	// stops reading would hold this worker and its connection slot forever.
	c.raw.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := w.Write(body); err != nil {
		w.Close()
		return nil, false, err
	}
	resp, err := w.CloseWithResponse()
	c.raw.SetWriteDeadline(time.Time{})
	if err != nil {
		if !isSMTPError(err) {
			// The whole message went out but its reply did not come back:
			// the upstream may have accepted it.
			return nil, false, &unconfirmedError{err}
		}
		return nil, true, err
	}
	// go-smtp keeps only the text of the final 250; the code is implied.
	reply := "250 " + resp.StatusText
	for _, r := range accepted {
		results[r] = result{reply: reply}
	}
	return results, true, nil
}

// withoutSMTPUTF8 prepares a message the client sent with SMTPUTF8 for an
// upstream that does not offer the extension. Clients ask for it whatever
// the message, and RFC 6531 needs it only where an address or the header
// is not ASCII: when they are ASCII after all, the message goes out
// without it (a UTF-8 body needs only 8BITMIME). What does need it can never go through this
// upstream, however long it is retried (go-smtp's client refuses to send
// such a MAIL, with an error that would read as temporary): a non-ASCII
// sender or header fails the whole transaction, a non-ASCII recipient
// fails alone, permanently, with the RFC 6531 status (x.6.7 for an
// address, x.6.9 for the header). It returns the recipients that may be
// sent to, and puts the refused ones in results.
func withoutSMTPUTF8(from string, rcpts []string, body []byte, results map[string]result) ([]string, error) {
	if !isASCII(from) {
		return nil, &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
			Message: "The upstream does not support SMTPUTF8, which the non-ASCII sender address needs"}
	}
	header, _, _ := strings.Cut(string(body), "\r\n\r\n")
	if !isASCII(header) {
		return nil, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 9},
			Message: "The upstream does not support SMTPUTF8, which the message's non-ASCII header needs"}
	}
	var sendable []string
	for _, r := range rcpts {
		if isASCII(r) {
			sendable = append(sendable, r)
			continue
		}
		err := &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
			Message: "The upstream does not support SMTPUTF8, which the non-ASCII recipient address needs"}
		results[r] = result{err: err, reply: errorText(err)}
	}
	return sendable, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// resetOK aborts the transaction after an SMTP-level refusal so the
// connection can be reused; after a network error it cannot.
func resetOK(c *smtp.Client, err error) bool {
	if err != nil && !isSMTPError(err) {
		return false
	}
	return c.Reset() == nil
}

func isSMTPError(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}

// isClosing reports whether err is a 421: the upstream is closing the
// session (service unavailable, too busy, rate limited).
func isClosing(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 421
}

// errorText renders an error as the reply line operators and DSNs quote:
// "550 5.1.1 <text>" for SMTP replies, the error text otherwise.
func errorText(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		msg := strings.ReplaceAll(se.Message, "\n", " ")
		if se.EnhancedCode == smtp.NoEnhancedCode || se.EnhancedCode == (smtp.EnhancedCode{}) {
			return fmt.Sprintf("%d %s", se.Code, msg)
		}
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], msg)
	}
	return err.Error()
}

// setupError marks a failure to connect, secure or log in to an upstream:
// a problem of the upstream as a whole, not of any recipient.
type setupError struct{ err error }

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

func isSetupError(err error) bool {
	var se *setupError
	return errors.As(err, &se)
}

// unconfirmedError marks a failure after the whole message was sent, before
// the upstream's reply to it arrived: the upstream may have the message, so
// it must not be sent through another upstream in the same attempt.
type unconfirmedError struct{ err error }

func (e *unconfirmedError) Error() string { return e.err.Error() }
func (e *unconfirmedError) Unwrap() error { return e.err }

func isUnconfirmed(err error) bool {
	var ue *unconfirmedError
	return errors.As(err, &ue)
}

// isUpstreamWide reports whether err says the upstream as a whole is
// unavailable, so every message for it should wait rather than retry on
// its own: it could not be reached or logged in to, it is closing the
// service (421), or it is rate limiting us.
func isUpstreamWide(err error) bool {
	if err == nil {
		return false
	}
	if isSetupError(err) {
		return true
	}
	if isClosing(err) {
		return true
	}
	v := bounce.ClassifyError(err)
	return v.Class == bounce.Temporary && (v.Category == bounce.RateLimited || v.Category == bounce.Network)
}

// Bounce ends delivery of a pending message at the operator's request:
// every queued recipient fails with reason, and the sender gets a
// notification as for any permanent failure.
func (d *Deliverer) Bounce(id, reason string) error {
	m, err := d.q.Take(id)
	if err != nil {
		return err
	}
	now := d.opts.Now()
	n := notices{}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status != queue.Queued {
			continue
		}
		r.Status, r.Reply, r.DSNStatus, r.Updated = queue.Failed, reason, "5.0.0", now
		if wants(r, "FAILURE") {
			n.failed = append(n.failed, r)
		}
	}
	body, _ := d.q.Body(m.ID)
	m.RecordAttempt(queue.Attempt{At: now, Upstream: "-", Result: reason})
	next := m.NextAttempt
	if err := d.q.Update(m, d.notifications(m, body, "", n, now)...); err != nil {
		// Nothing was written: the message goes back as it was, and the
		// operator sees the error and can try again.
		d.q.Release(m.ID, next)
		return err
	}
	d.log.Info("message bounced by the operator", "id", m.ID, "user", m.User)
	return nil
}
