// Package delivery sends queued mail upstream: a bounded set of workers
// leases due messages from the queue, picks the message's upstream
// (its user's smarthost or the default route), sends over TLS with the
// upstream's credentials through a pool of reused connections, and records
// each recipient's outcome back in the queue.
//
// Failure rules, per recipient: a reply or error judged permanent ends
// delivery to that recipient (status failed); anything else — including
// errors we cannot classify — is temporary and the recipient is retried
// later. Delivery fails closed: when an upstream has credentials and does not
// offer TLS or AUTH, that is a temporary failure, never a plaintext send.
//
// This is the only package that dials smarthosts.
package delivery

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/queue"
)

// Router names the upstream for a message's route ("" = default route).
type Router interface {
	Upstream(route string) (*Upstream, error)
}

// Queue is what delivery needs from the queue (package queue).
type Queue interface {
	Next(done <-chan struct{}) (*queue.Message, error)
	Body(id string) ([]byte, error)
	Update(m *queue.Message) error
}

var _ Queue = (*queue.Queue)(nil)

// Verdict is the judgement of one failure (from package bounce).
type Verdict struct {
	Permanent bool
	// Category and Explanation are for logs and notifications.
	Category    string
	Explanation string
}

// Options configures a Deliverer.
type Options struct {
	// LocalName is the EHLO name presented to upstreams.
	LocalName              string
	Workers                int
	ConnectionsPerUpstream int
	ConnectTimeout         time.Duration
	CommandTimeout         time.Duration
	IdleConnection         time.Duration
	// RetryDelay returns the wait before attempt n+1 after n attempts.
	RetryDelay func(attempts int) time.Duration
	// Classify judges a failed attempt's error.
	Classify func(err error) Verdict
	Logger   *slog.Logger
	Now      func() time.Time
}

// Deliverer runs the delivery workers.
type Deliverer struct {
	q      Queue
	router Router
	opts   Options
	log    *slog.Logger
	pool   *pool
}

// New returns a Deliverer; Run starts it.
func New(q Queue, router Router, opts Options) *Deliverer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Classify == nil {
		opts.Classify = classifyByCode
	}
	if opts.RetryDelay == nil {
		opts.RetryDelay = func(int) time.Duration { return time.Minute }
	}
	return &Deliverer{q: q, router: router, opts: opts, log: opts.Logger,
		pool: newPool(opts.ConnectionsPerUpstream, opts.IdleConnection)}
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

// attempt makes one delivery attempt for every queued recipient of m and
// stores the outcome.
func (d *Deliverer) attempt(m *queue.Message, done <-chan struct{}) {
	start := d.opts.Now()
	var rcpts []string
	for _, r := range m.Recipients {
		if r.Status == queue.Queued {
			rcpts = append(rcpts, r.Addr)
		}
	}
	up, err := d.router.Upstream(m.Route)
	upName := m.Route
	var results map[string]result
	if err == nil {
		upName = up.Name
		body, berr := d.q.Body(m.ID)
		switch {
		case berr != nil:
			err = berr
		case body == nil:
			err = errors.New("message body is missing from the queue")
		default:
			results, err = d.send(up, m, body, rcpts, done)
		}
	}
	now := d.opts.Now()
	elapsed := now.Sub(start)
	// An error for the whole attempt applies to every recipient in it.
	if err != nil {
		results = make(map[string]result, len(rcpts))
		for _, r := range rcpts {
			results[r] = result{err: err, reply: errorText(err)}
		}
	}

	for i := range m.Recipients {
		r := &m.Recipients[i]
		res, ok := results[r.Addr]
		if !ok || r.Status != queue.Queued {
			continue
		}
		r.Attempts++
		r.Updated = now
		r.Reply = res.reply
		if res.err == nil {
			r.Status = queue.Delivered
		} else if v := d.opts.Classify(res.err); v.Permanent {
			r.Status = queue.Failed
		}
		d.log.Info("delivery attempt", "id", m.ID, "user", m.User, "from", m.From, "rcpt", r.Addr,
			"upstream", upName, "status", r.Status, "reply", r.Reply, "duration", elapsed)
	}
	summary := "ok"
	if err != nil {
		summary = errorText(err)
	}
	m.RecordAttempt(queue.Attempt{At: start, Upstream: upName, Duration: elapsed, Result: summary})
	m.NextAttempt = now.Add(d.opts.RetryDelay(len(m.Attempts)))
	if err := d.q.Update(m); err != nil {
		d.log.Error("recording delivery failed", "id", m.ID, "err", err)
	}
}

// send runs one SMTP transaction for m. It returns per-recipient results,
// or an error that applies to all of them.
func (d *Deliverer) send(up *Upstream, m *queue.Message, body []byte, rcpts []string, done <-chan struct{}) (map[string]result, error) {
	key := up.key()
	c, ok := d.pool.acquire(key, done)
	if !ok {
		return nil, errors.New("delivery stopped")
	}
	reused := c != nil
	for {
		if c == nil {
			var err error
			if c, err = Dial(up, d.opts.LocalName, d.opts.ConnectTimeout, d.opts.CommandTimeout); err != nil {
				d.pool.release(key, nil)
				return nil, err
			}
		}
		results, keep, err := transact(c, m, body, rcpts)
		if err != nil && reused && !isSMTPError(err) && results == nil {
			// A pooled connection the upstream closed while idle fails on
			// its first command; that says nothing about this message.
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

// transact sends MAIL, RCPT for each recipient and DATA. keep reports
// whether the connection is in a clean state for reuse.
func transact(c *smtp.Client, m *queue.Message, body []byte, rcpts []string) (results map[string]result, keep bool, err error) {
	opts := &smtp.MailOptions{Size: int64(len(body)), UTF8: m.UTF8}
	if err := c.Mail(m.From, opts); err != nil {
		return nil, resetOK(c, err), err
	}
	results = make(map[string]result, len(rcpts))
	var accepted []string
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			if !isSMTPError(err) {
				return nil, false, err
			}
			results[r] = result{err: err, reply: errorText(err)}
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return results, resetOK(c, nil), nil
	}
	w, err := c.Data()
	if err != nil {
		return nil, resetOK(c, err), err
	}
	if _, err := w.Write(body); err != nil {
		w.Close()
		return nil, false, err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return nil, isSMTPError(err), err
	}
	// go-smtp keeps only the text of the final 250; the code is implied.
	reply := "250 " + resp.StatusText
	for _, r := range accepted {
		results[r] = result{reply: reply}
	}
	return results, true, nil
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

// classifyByCode is the fallback judgement: 5xx replies are permanent,
// everything else temporary.
func classifyByCode(err error) Verdict {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 {
		return Verdict{Permanent: true, Category: "other"}
	}
	return Verdict{Category: "other"}
}
