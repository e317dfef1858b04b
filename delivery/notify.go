package delivery

import (
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/bounce"
	"outbound/queue"
)

// DSNOptions says how the relay's delivery status notifications are
// addressed and sent. They must get past the upstream the original went
// through: providers such as Mailgun and Amazon SES refuse mail whose
// sender is outside the domains verified with them, and the one domain
// sure to be verified there is the original sender's own.
type DSNOptions struct {
	// From is the notification's header From. "{domain}" in it stands for
	// the domain of the original message's envelope sender; "" means
	// "postmaster@{domain}" (RFC 5321 section 4.5.1: every domain has a
	// postmaster). When the sender has no domain, the notification comes
	// from MAILER-DAEMON at LocalName.
	From string
	// FallbackSender is the envelope sender a notification is sent with
	// when the upstream refuses the null reverse-path (a 5xx reply to
	// MAIL FROM:<>), "{domain}" as in From; "" tries no other sender, and
	// the notification fails. Nothing is ever sent about the notification
	// itself, whichever sender it went out with: in the queue it stays a
	// message from <>.
	FallbackSender string
	// Off reports whether user turned notifications off (it reads its
	// messages' fates from webhooks instead); nil means nobody has.
	Off func(user string) bool
}

// senderDomain returns the domain of addr, "" when it has none.
func senderDomain(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return ""
	}
	return addr[at+1:]
}

// expand puts the domain of addr into template's "{domain}"; "" when the
// template needs a domain and addr has none.
func expand(template, addr string) string {
	if !strings.Contains(template, "{domain}") {
		return template
	}
	domain := senderDomain(addr)
	if domain == "" {
		return ""
	}
	return strings.ReplaceAll(template, "{domain}", domain)
}

// dsnFrom is the header From of a notification to the envelope sender
// from; "" lets bounce.Compose use MAILER-DAEMON at our host name.
func (d *Deliverer) dsnFrom(from string) string {
	template := d.opts.DSN.From
	if template == "" {
		template = "postmaster@{domain}"
	}
	return expand(template, from)
}

// nullSenderFallback is the envelope sender to use for m after the upstream
// refused the null reverse-path with err, or "" when there is none: m is
// no notification (a message from <> is only ever one of ours, the relay
// never accepts <> from clients), err is no permanent refusal (a 4xx is
// retried as it is), or no fallback is configured.
func (d *Deliverer) nullSenderFallback(m *queue.Message, err error) string {
	var se *smtp.SMTPError
	if m.From != "" || len(m.Recipients) != 1 || !errors.As(err, &se) || se.Code < 500 {
		return ""
	}
	// A notification's only recipient is the original's sender.
	fb := expand(d.opts.DSN.FallbackSender, m.Recipients[0].Addr)
	if fb != "" {
		d.log.Warn("upstream refused the null reverse-path; sending the notification with the fallback sender",
			"id", m.ID, "reply", errorText(err), "sender", fb)
	}
	return fb
}

// notifications builds the delivery status notifications (RFC 3464) an
// attempt calls for: one per kind (failed, delayed, delivered), each
// listing its recipients with the upstream's exact reply. They go to the
// envelope sender through the normal queue, on the same route as the
// message (the upstream that took the sender's mail takes the notice
// too), from the null sender (RFC 5321 section 4.5.5; see
// DSNOptions.FallbackSender for upstreams that refuse it), with the header
// From of DSNOptions.From. No notification loops: a message from the null
// sender (itself a notification) never gets one, and every notification
// says Auto-Submitted: auto-replied (RFC 3834). A user who turned
// notifications off (DSNOptions.Off) gets none.
func (d *Deliverer) notifications(m *queue.Message, body []byte, remoteMTA string, n notices, now time.Time) []queue.Addition {
	if m.From == "" {
		for _, r := range n.failed {
			d.log.Warn("notification undeliverable", "id", m.ID, "rcpt", r.Addr, "reply", r.Reply)
		}
		return nil
	}
	if d.opts.DSN.Off != nil && m.User != "" && d.opts.DSN.Off(m.User) {
		if n.failed != nil || n.delayed != nil || n.delivered != nil {
			d.log.Info("notification not sent: the user turned notifications off", "id", m.ID, "user", m.User)
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
			Postmaster:   d.dsnFrom(m.From),
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
