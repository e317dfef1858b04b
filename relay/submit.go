package relay

import (
	"bytes"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"outbound/auth"
	"outbound/metrics"
	"outbound/queue"
)

// Submission is one message handed to the relay by a front end other than
// SMTP (the HTTP send API): the user it was authenticated as, its envelope
// and its bytes.
type Submission struct {
	// User is the relay user the caller authenticated as.
	User string
	From string
	To   []string
	// Message is the whole message, header and body, with CRLF line
	// endings.
	Message []byte
	// RemoteIP and Client name the caller in the Received header.
	RemoteIP string
	Client   string
	// Protocol is the Received header's "with" (for example "HTTPSA").
	Protocol string
	// AlsoWrite, when set, gives a write made in the transaction that
	// queues the message with the given queue ID, so that what the caller
	// records about it (an idempotency key's answer) is durable exactly
	// when the message is.
	AlsoWrite func(id string) queue.TxHook
	// Tags and Metadata are stored with the queued message
	// (queue.Message) and carried into its events; the caller has checked
	// their limits.
	Tags     []string
	Metadata map[string]string
}

// Refusal is why Submit did not queue a message: the reply an SMTP client
// would have read, with the same code and words.
type Refusal struct {
	*smtp.SMTPError
	// RetryIn is, for a sending limit, when the next slot frees up; 0
	// otherwise.
	RetryIn time.Duration
}

// Submit queues a message exactly as an SMTP session would, through the
// same MAIL, RCPT and DATA steps (sender ownership, limits, suppressions,
// SPF, header checks, sender defaults, long-line re-encoding, DKIM, the
// durable queue write with the quota hold and received events): a second
// way in must not be a second set of rules. It returns the queue ID once
// the message is durably queued, or the refusal an SMTP client would have
// read.
func (b *Backend) Submit(sub Submission) (string, *Refusal) {
	s := &session{b: b, tls: true, helo: sub.Client, remoteIP: sub.RemoteIP, protocol: sub.Protocol, alsoWrite: sub.AlsoWrite,
		tags: sub.Tags, metadata: sub.Metadata}
	r := s.submit(sub)
	metrics.Submissions.WithLabelValues(string(r.outcome)).Inc()
	if r.outcome == outcomeQueued {
		return r.queued, nil
	}
	return "", &Refusal{SMTPError: r.se, RetryIn: r.retryIn}
}

func (s *session) submit(sub Submission) *reply {
	u, err := s.b.opts.Users.Get(sub.User)
	if err != nil {
		if errors.Is(err, auth.ErrNoSuchUser) {
			return errAuthRequired
		}
		s.b.log.Error("user lookup failed", "user", sub.User, "err", err)
		return errTemporary
	}
	s.user = u
	opts := &smtp.MailOptions{Size: int64(len(sub.Message)), UTF8: !isASCII(sub.From)}
	for _, to := range sub.To {
		opts.UTF8 = opts.UTF8 || !isASCII(to)
	}
	if r := s.mail(sub.From, opts); r != nil {
		return r
	}
	if max := s.b.opts.MaxRecipients; max > 0 && len(sub.To) > max {
		return errTooManyRecipients(max)
	}
	for _, to := range sub.To {
		if r := s.rcpt(to, nil); r != nil {
			return r
		}
	}
	return s.data(bytes.NewReader(sub.Message))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
