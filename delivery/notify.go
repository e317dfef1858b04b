package delivery

import (
	"strings"
	"time"

	"outbound/bounce"
	"outbound/queue"
)

// notifications builds the delivery status notifications (RFC 3464) an
// attempt calls for: one per kind (failed, delayed, delivered), each
// listing its recipients with the upstream's exact reply. They go to the
// envelope sender through the normal queue, from the null sender, on the
// same route as the message. A message from the null sender (itself a
// notification) never gets one: no DSN loops.
func (d *Deliverer) notifications(m *queue.Message, body []byte, remoteMTA string, n notices, now time.Time) []queue.Addition {
	if m.From == "" {
		for _, r := range n.failed {
			d.log.Warn("notification undeliverable", "id", m.ID, "rcpt", r.Addr, "reply", r.Reply)
		}
		return nil
	}
	var out []queue.Addition
	for _, group := range []struct {
		action bounce.Action
		rcpts  []*queue.Recipient
	}{
		{bounce.ActionFailed, n.failed},
		{bounce.ActionDelayed, n.delayed},
		{bounce.ActionDelivered, n.delivered},
	} {
		if len(group.rcpts) == 0 {
			continue
		}
		report := bounce.Report{
			ReportingMTA: d.opts.LocalName,
			To:           m.From,
			EnvelopeID:   m.EnvID,
			ArrivalDate:  m.Created,
			Original:     body,
			ReturnFull:   strings.EqualFold(m.Ret, "FULL") && group.action == bounce.ActionFailed,
			Now:          now,
		}
		for _, r := range group.rcpts {
			rr := bounce.RecipientReport{
				FinalRecipient:    r.Addr,
				OriginalRecipient: r.ORCPT,
				Action:            group.action,
				Status:            r.DSNStatus,
				RemoteMTA:         remoteMTA,
				DiagnosticCode:    r.Reply,
				LastAttempt:       now,
			}
			if group.action == bounce.ActionDelayed {
				rr.WillRetryUntil = m.Created.Add(d.opts.MaxLifetime)
				rr.Status = withClass(rr.Status, '4')
			}
			report.Recipients = append(report.Recipients, rr)
		}
		dsn, err := bounce.Compose(report)
		if err != nil {
			d.log.Error("composing notification failed", "id", m.ID, "action", group.action, "err", err)
			continue
		}
		out = append(out, queue.Addition{
			Message: &queue.Message{
				From:       "",
				Recipients: []queue.Recipient{{Addr: m.From, Status: queue.Queued}},
				Route:      m.Route,
				// A non-ASCII sender address is the notice's recipient
				// and its To: it needs SMTPUTF8 (RFC 6531), and gets
				// the same treatment as any message flagged so.
				UTF8:    !isASCII(m.From),
				Created: now,
			},
			Body: dsn,
		})
		d.log.Info("notification queued", "id", m.ID, "action", group.action, "to", m.From, "rcpts", len(group.rcpts))
	}
	return out
}

// withClass returns an RFC 3463 status with its class digit replaced:
// a delay report says 4.x.x whatever the last reply's class was.
func withClass(status string, class byte) string {
	if len(status) < 5 || status[1] != '.' {
		return string(class) + ".0.0"
	}
	return string(class) + status[1:]
}
