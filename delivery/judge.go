package delivery

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"outbound/bounce"
	"outbound/queue"
)

// What an attempt means for each recipient: its status from the verdict,
// the notifications it calls for, and when the message is tried next.

// notices collects the recipients an attempt must report on, by kind.
type notices struct {
	failed, delayed, delivered []*queue.Recipient
}

// judge sets a recipient's status from one attempt's result and its
// verdict, and notes the notifications it calls for. Temporary failures are
// retried until the message is MaxLifetime old; then the recipient fails
// with the last reply.
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
	v := res.verdict
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
