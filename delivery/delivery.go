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
// later. Package bounce gives the whole verdict (bounce.Judge), once per
// failed transaction and once per refused recipient, for the phase the
// failure happened in: permanent or not, whether the upstream as a whole
// failed (it is backed off) and whether the message may fail over. A
// failure to connect, secure or log in is never permanent. The files
// follow the attempt: the worker loop here, the SMTP transaction in
// transaction.go, each recipient's fate in judge.go. Delivery fails closed: when an upstream has credentials and does not
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
	"sync"
	"time"

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
	UpdateAlso(m *queue.Message, alsoWrite []queue.TxHook, additions ...queue.Addition) error
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
	// Events, when set, records each recipient's outcome and each
	// notification in the message's timeline (tracking.go).
	Events EventWriter
	// Suppressions, when set, suppresses recipients whose permanent
	// failure says the address will not work (tracking.go).
	Suppressions Suppressor
	// Capture keeps what the capture upstream (route.Upstream.Capture)
	// "delivers"; needed only when a route is capture.
	Capture Capturer
	// StopGrace is how long Run, once done is closed, lets transactions
	// in progress finish before it closes their connections (their
	// messages go back to the queue unchanged); 0 means 10 seconds.
	StopGrace time.Duration
	// DSN says how notifications are addressed and sent (notify.go).
	DSN    DSNOptions
	Logger *slog.Logger
	Now    func() time.Time
}

// Deliverer runs the delivery workers.
type Deliverer struct {
	q        Queue
	router   Router
	opts     Options
	log      *slog.Logger
	pool     *pool
	backoffs *backoffs
	inFlight inFlight
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

// Run delivers until done is closed, then waits for attempts in flight
// (for StopGrace at most: then their connections are closed and their
// messages go back to the queue unchanged) and closes pooled connections.
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
			stopped := make(chan struct{})
			go func() {
				wg.Wait()
				close(stopped)
			}()
			grace := d.opts.StopGrace
			if grace <= 0 {
				grace = 10 * time.Second
			}
			select {
			case <-stopped:
			case <-time.After(grace):
				n := d.inFlight.abort()
				d.log.Warn("delivery stopping: transactions still running after the grace period are cut off; their messages stay queued",
					"transactions", n, "grace", grace)
				<-stopped
			}
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

// attempt makes one delivery attempt for every queued recipient of m,
// applies each recipient's verdict (judge) and stores the outcome, with any
// notifications it calls for, in one queue update.
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
	var out outcome
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
			used, out = d.deliver(up, m, body, rcpts, done)
			if errors.Is(out.err, errStopped) {
				d.q.Release(m.ID, m.NextAttempt)
				return
			}
			upName, upHost = used.Name, used.Host
			if used != up {
				upName = fmt.Sprintf("%s (fallback of %s)", used.Name, up.Name)
			}
		}
	}
	if err != nil {
		// A local failure, before any upstream had a part in it: there is
		// no phase to judge it in, and no upstream to back off.
		out = outcome{err: err, verdict: bounce.ClassifyError(err)}
	}
	now := d.opts.Now()
	elapsed := now.Sub(start)
	metrics.UpstreamLatency.WithLabelValues(upName).Observe(elapsed.Seconds())
	// An error for the whole attempt, and its verdict, applies to every
	// recipient in it.
	results := out.results
	if out.err != nil {
		results = make(map[string]result, len(rcpts))
		for _, r := range rcpts {
			results[r] = result{err: out.err, reply: errorText(out.err), verdict: out.verdict}
		}
	}

	n := notices{}
	var tally attemptTally
	var track tracking
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
		tally.add(r)
		track.recipient(m, r, upName, res.verdict, now)
		d.log.Info("delivery attempt", "id", m.ID, "user", m.User, "from", m.From, "rcpt", r.Addr,
			"upstream", upName, "status", r.Status, "reply", r.Reply, "duration", elapsed)
	}
	summary := tally.String()
	if out.err != nil {
		summary = errorText(out.err)
	}
	m.RecordAttempt(queue.Attempt{At: start, Upstream: upName, Duration: elapsed, Result: summary})
	m.NextAttempt = d.nextAttempt(m, now)
	d.record(m, &track, d.notifications(m, body, upHost, n, now), now, done)
}

// attemptTally counts what one attempt did to its recipients, for the
// attempt's line in the message's history.
type attemptTally struct {
	delivered, failed, deferred int
	// firstRefusal is the reply of the first recipient not delivered.
	firstRefusal string
}

func (t *attemptTally) add(r *queue.Recipient) {
	switch r.Status {
	case queue.Delivered:
		t.delivered++
		return
	case queue.Failed:
		t.failed++
	default:
		t.deferred++
	}
	if t.firstRefusal == "" {
		t.firstRefusal = r.Reply
	}
}

// String is "ok" when every recipient was delivered; otherwise it says how
// many were delivered, failed and deferred, and the first refusal, so that
// an attempt whose transaction went through but whose recipients were
// refused one by one does not read as a success.
func (t attemptTally) String() string {
	if t.failed == 0 && t.deferred == 0 {
		return "ok"
	}
	return fmt.Sprintf("%d delivered, %d failed, %d deferred: %s", t.delivered, t.failed, t.deferred, t.firstRefusal)
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
func (d *Deliverer) record(m *queue.Message, track *tracking, additions []queue.Addition, now time.Time, done <-chan struct{}) {
	also, committed := d.writes(track, m, additions, now)
	for failures := 1; ; failures++ {
		err := d.q.UpdateAlso(m, also, additions...)
		if err == nil {
			committed()
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
	var track tracking
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
		v := bounce.Classify(0, "", reply)
		metrics.Deliveries.WithLabelValues(up.Name, "failed", string(v.Category)).Inc()
		track.recipient(m, r, up.Name, bounce.Verdict{Category: v.Category}, now)
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
	d.record(m, &track, d.notifications(m, body, "", n, now), now, done)
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
// taken the message (the verdict's MayFailOver, bounce.Judge) and the
// fallback is not backed off itself. Only one level is followed: the
// fallback's own Fallback is not.
//
// It returns the upstream whose outcome is this attempt's.
func (d *Deliverer) deliver(up *route.Upstream, m *queue.Message, body []byte, rcpts []string, done <-chan struct{}) (*route.Upstream, outcome) {
	fb := up.Fallback
	if _, down := d.backoffs.downUntil(connKey(up), d.opts.Now()); down && fb != nil {
		// heldUntil found the fallback up (another worker may have
		// marked it down since; then it is tried anyway, as ever).
		d.log.Debug("upstream backed off; delivering through its fallback", "id", m.ID, "upstream", up.Name, "fallback", fb.Name)
		return fb, d.try(fb, m, body, rcpts, done)
	}
	out := d.try(up, m, body, rcpts, done)
	if fb == nil || !out.verdict.MayFailOver {
		return up, out
	}
	if until, down := d.backoffs.downUntil(connKey(fb), d.opts.Now()); down {
		d.log.Info("upstream failed and its fallback is backed off too", "id", m.ID, "upstream", up.Name, "fallback", fb.Name, "fallback_until", until)
		return up, out
	}
	d.log.Warn("upstream failed; failing over to its fallback", "id", m.ID, "upstream", up.Name, "fallback", fb.Name, "err", errorText(out.err))
	return fb, d.try(fb, m, body, rcpts, done)
}

// try runs one transaction through up and keeps up's backoff state: a
// failure the verdict finds upstream-wide backs it off, a completed
// transaction clears it.
func (d *Deliverer) try(up *route.Upstream, m *queue.Message, body []byte, rcpts []string, done <-chan struct{}) outcome {
	out := d.send(up, m, body, rcpts, done)
	switch {
	case errors.Is(out.err, errStopped):
	case out.verdict.UpstreamWide:
		until := d.backoffs.failed(connKey(up), up.Name, errorText(out.err), d.opts.Now())
		d.log.Warn("upstream unavailable; holding its messages", "upstream", up.Name, "until", until, "err", errorText(out.err))
	case out.err == nil:
		d.backoffs.succeeded(connKey(up))
	}
	return out
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
	var track tracking
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status != queue.Queued {
			continue
		}
		r.Status, r.Reply, r.DSNStatus, r.Updated = queue.Failed, reason, "5.0.0", now
		track.recipient(m, r, "-", bounce.Verdict{}, now)
		if wants(r, "FAILURE") {
			n.failed = append(n.failed, r)
		}
	}
	body, _ := d.q.Body(m.ID)
	m.RecordAttempt(queue.Attempt{At: now, Upstream: "-", Result: reason})
	next := m.NextAttempt
	additions := d.notifications(m, body, "", n, now)
	also, committed := d.writes(&track, m, additions, now)
	if err := d.q.UpdateAlso(m, also, additions...); err != nil {
		// Nothing was written: the message goes back as it was, and the
		// operator sees the error and can try again.
		d.q.Release(m.ID, next)
		return err
	}
	committed()
	d.log.Info("message bounced by the operator", "id", m.ID, "user", m.User)
	return nil
}
