// Package relay is the submission side of outbound: the go-smtp backend and
// sessions behind the implicit-TLS (465) and STARTTLS (587) listeners.
//
// A session must authenticate (over TLS only) before MAIL; the envelope
// sender and every header From address must be ones the user may send as;
// the message is checked (size, line endings, header), completed
// (Message-ID, Date, Received) and written to the queue. The 250 reply goes
// out only after the queue has durably committed the message. The relay
// never dials an upstream: delivery is another package's job.
package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/auth"
	"outbound/metrics"
	"outbound/queue"
	"outbound/quota"
	"outbound/route"
	"outbound/spf"
)

// Users verifies SMTP AUTH credentials (package auth).
type Users interface {
	Verify(name, password string) (*auth.User, error)
	Get(name string) (*auth.User, error)
}

// Spool durably stores an accepted message (package queue), together with
// alsoWrite in the same transaction. When Add returns nil the message must
// survive a crash.
type Spool interface {
	Add(m *queue.Message, body []byte, alsoWrite ...queue.TxHook) error
}

// Quota enforces per-user sending limits (package quota): Check at RCPT,
// Hold when the message is about to be queued (atomically, so pipelined
// RCPTs on parallel connections cannot oversend; the hold is written in the
// message's own transaction), Release if queueing then fails.
type Quota interface {
	Check(user string, lim quota.Limits, pending, n int) error
	Hold(user string, lim quota.Limits, n int) (quota.Reservation, error)
	Release(r quota.Reservation) error
}

// SPFChecker evaluates a sender domain's SPF policy for an upstream
// (package spf).
type SPFChecker interface {
	Check(ctx context.Context, domain string, id spf.Identity) spf.Result
}

// Routes gives what the relay must know about a user's route: its
// sending limits and the SPF identity and policy of its upstream (package
// route).
type Routes interface {
	Policy(u *auth.User) route.Policy
}

var (
	_ Users      = (*auth.Store)(nil)
	_ Spool      = (*queue.Queue)(nil)
	_ Quota      = (*quota.Store)(nil)
	_ Quota      = (*quota.Shared)(nil)
	_ SPFChecker = (*spf.Checker)(nil)
	_ Routes     = (*route.Router)(nil)
)

// Options configures a Backend.
type Options struct {
	// Hostname is the relay's name in the greeting and Received headers.
	Hostname string
	Users    Users
	Spool    Spool
	// Quota, when set, enforces Routes.Policy(user).Limits.
	Quota Quota
	// Suppressions, when set, refuses RCPT to a recipient on the user's
	// suppression list (suppression.go).
	Suppressions Suppressions
	// Events, when set, records a received event per recipient in the
	// transaction that queues the message (suppression.go).
	Events Events
	// SPF, when set, checks sender domains under Routes.Policy(user).SPFPolicy.
	SPF SPFChecker
	// Routes gives the limits and SPF settings of a user's route, asked
	// at every MAIL. Required when Quota or SPF is set.
	Routes Routes
	// SPFTimeout bounds one SPF evaluation.
	SPFTimeout time.Duration
	// Throttle, when set, refuses AUTH to sources that keep failing and
	// slows (never refuses) a login guessed at from many sources.
	Throttle *auth.Throttle
	// MaxMessageBytes and MaxRecipients are the per-message limits.
	MaxMessageBytes int64
	MaxRecipients   int
	// RejectBareLineEndings refuses messages with bare CR or LF instead of
	// normalizing them to CRLF.
	RejectBareLineEndings bool
	ReadTimeout           time.Duration
	WriteTimeout          time.Duration
	// MaxLineLength is go-smtp's limit on a command line and on a DATA
	// line; a longer DATA line is refused with a permanent 550 5.6.0.
	// Lines longer than RFC 5322's 998 octets below it are accepted and
	// re-encoded (longlines.go). 0 means DefaultMaxLineLength.
	MaxLineLength int
	// MaxBytesInFlight bounds the bytes all sessions together hold for
	// messages being received and queued (budget.go); past it MAIL and
	// DATA get 452 4.3.1. 0 means DefaultBytesInFlight(MaxMessageBytes).
	MaxBytesInFlight int64
	// Signer, when set, DKIM-signs each message for its header From's
	// domain just before it is queued (dkim.go).
	Signer Signer
	// MaxErrors ends a session with 421 4.7.0 once this many of its MAIL,
	// RCPT, DATA or AUTH commands were refused; 0 means no limit.
	MaxErrors int
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultMaxLineLength is the line limit when Options sets none: lines of
// unwrapped HTML or base64 go through, and a command line (which go-smtp
// holds whole, before AUTH too) stays small.
const DefaultMaxLineLength = 64 << 10

// Backend is the go-smtp backend shared by both listeners.
type Backend struct {
	opts  Options
	log   *slog.Logger
	conns *connTracker // see lifecycle.go
	// inflight counts the bytes of messages being received and queued.
	inflight *byteBudget
}

// New returns a Backend.
func New(opts Options) *Backend {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SPFTimeout == 0 {
		opts.SPFTimeout = 10 * time.Second
	}
	if opts.MaxLineLength == 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	if opts.MaxBytesInFlight <= 0 {
		opts.MaxBytesInFlight = DefaultBytesInFlight(opts.MaxMessageBytes)
		opts.Logger.Info("in-flight byte budget set from the memory available", "bytes", opts.MaxBytesInFlight)
	}
	return &Backend{opts: opts, log: opts.Logger, conns: newConnTracker(), inflight: newByteBudget(opts.MaxBytesInFlight)}
}

// NewServer returns a go-smtp server for one listener. With implicitTLS the
// caller must hand Serve a TLS listener (tls.NewListener); otherwise the
// server offers STARTTLS and refuses AUTH until it has been used.
func (b *Backend) NewServer(tlsConfig *tls.Config, implicitTLS bool) *smtp.Server {
	s := smtp.NewServer(b)
	s.Domain = b.opts.Hostname
	s.TLSConfig = tlsConfig
	s.MaxMessageBytes = b.opts.MaxMessageBytes
	s.MaxRecipients = b.opts.MaxRecipients
	s.MaxLineLength = b.opts.MaxLineLength
	s.ReadTimeout = b.opts.ReadTimeout
	s.WriteTimeout = b.opts.WriteTimeout
	s.EnableSMTPUTF8 = true
	// DSN (RFC 3461): NOTIFY, ORCPT, RET and ENVID are stored with the
	// message and honoured by delivery's notifications.
	s.EnableDSN = true
	// go-smtp answers AUTH before TLS with its own 523; letting the session
	// see the command lets us answer with the 530 5.7.0 that clients and
	// RFC 3207 expect. Session.Auth refuses every mechanism until TLS is up,
	// and AuthMechanisms advertises none before it.
	s.AllowInsecureAuth = true
	s.ErrorLog = slogPrinter{b.log}
	return s
}

// ServerTLSConfig returns the TLS settings for the submission listeners:
// TLS 1.2 minimum and no session tickets (Microsoft's SMTP client aborts
// STARTTLS against Go servers that send TLS 1.3 tickets, golang/go#70232).
func ServerTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{cert},
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
	}
}

// NewSession implements smtp.Backend.
func (b *Backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	s := &session{b: b, conn: c, raw: trackedConnOf(c), tls: isTLS, helo: c.Hostname()}
	if addr, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		s.remoteIP = addr.IP.String()
		s.source = auth.SourceOf(addr.IP)
	}
	s.raw.attach(s)
	return guardedSession{s}, nil
}

type session struct {
	b        *Backend
	conn     *smtp.Conn
	raw      *trackedConn // nil unless the server was started by Serve
	tls      bool
	helo     string
	remoteIP string
	// source is what failed logins are charged to: the address, or its
	// /64 for IPv6 (see auth.Throttle).
	source string
	// protocol is the Received header's "with": ESMTPSA for SMTP, set
	// by Submit for the send API.
	protocol string
	// alsoWrite, set by Submit, gives a write for the transaction that
	// queues the message with the given ID.
	alsoWrite func(id string) queue.TxHook
	// tags and metadata, set by Submit, go into the queued message.
	tags     []string
	metadata map[string]string
	user     *auth.User
	policy   route.Policy

	// The transaction in progress, cleared by Reset.
	from     string
	mailOpts smtp.MailOptions
	// spfResult is the last non-pass SPF verdict under "warn", recorded
	// in a header of the queued message.
	spfResult *spf.Result
	rcpts     []queue.Recipient

	// refused counts this session's refused commands, for MaxErrors.
	refused int
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string {
	if !s.tls {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	srv, r := s.auth(mech)
	return srv, s.answer(r)
}

func (s *session) auth(mech string) (sasl.Server, *reply) {
	if !s.tls {
		return nil, errTLSRequired
	}
	if left, locked := s.b.opts.Throttle.SourceRefused(s.source); locked {
		metrics.AuthFailures.WithLabelValues("locked_out").Inc()
		return nil, errSourceThrottled(left)
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.answer(errAuthFailed)
			}
			return s.answer(s.login(username, password))
		}), nil
	case sasl.Login:
		return auth.NewLoginServer(func(username, password string) error {
			return s.answer(s.login(username, password))
		}), nil
	}
	return nil, errAuthMechanism
}

// login verifies credentials. Neither the password nor the AUTH payload is
// ever logged.
func (s *session) login(username, password string) *reply {
	th := s.b.opts.Throttle
	if r := s.refusedLogin(username); r != nil {
		return r
	}
	// A login being guessed at is slowed for everyone, right password or
	// wrong, before anything is verified: slowing only the failures would
	// tell a guesser that an answer not coming at once is a failure, and
	// let it hang up and try again at full speed.
	delay := th.WaitForLogin(username)
	if delay > 0 {
		// Other sessions from this source may have locked it meanwhile.
		if r := s.refusedLogin(username); r != nil {
			return r
		}
	}
	u, err := s.b.opts.Users.Verify(username, password)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			s.b.log.Warn("auth failed", "user", username, "remote", s.remoteIP, "delay", delay)
			metrics.AuthFailures.WithLabelValues("bad_credentials").Inc()
			sourceLocked, loginLocked := th.Fail(s.source, username)
			if sourceLocked || loginLocked {
				s.b.log.Warn("auth locked out", "user", username, "remote", s.remoteIP, "source", s.source, "whole_source", sourceLocked)
			}
			switch {
			case sourceLocked:
				return errSourceThrottled(th.Lockout)
			case loginLocked:
				return errLoginThrottled(th.Lockout)
			}
			return errAuthFailed
		}
		s.b.log.Error("auth lookup failed", "user", username, "err", err)
		return errAuthUnavailable
	}
	s.user = u
	s.b.log.Info("auth ok", "user", username, "remote", s.remoteIP, "delay", delay)
	return nil
}

// refusedLogin returns the 421 for a source, or a source and login, that
// failed too often; nil when the login may be tried.
func (s *session) refusedLogin(username string) *reply {
	th := s.b.opts.Throttle
	if left, locked := th.SourceRefused(s.source); locked {
		metrics.AuthFailures.WithLabelValues("locked_out").Inc()
		return errSourceThrottled(left)
	}
	if left, locked := th.LoginRefused(s.source, username); locked {
		metrics.AuthFailures.WithLabelValues("locked_out").Inc()
		s.b.log.Warn("auth refused: login locked from this source", "user", username, "remote", s.remoteIP, "source", s.source)
		return errLoginThrottled(left)
	}
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	return s.authenticated(func() *reply { return s.mail(from, opts) })
}

func (s *session) mail(from string, opts *smtp.MailOptions) *reply {
	// Each transaction sees the user as it is now: an operator's change of
	// limits, senders or route applies to open connections too, and a
	// deleted user sends no more.
	u, err := s.b.opts.Users.Get(s.user.Name)
	if err != nil {
		if errors.Is(err, auth.ErrNoSuchUser) {
			s.user = nil
			return errAuthRequired
		}
		s.b.log.Error("user lookup failed", "user", s.user.Name, "err", err)
		return errTemporary
	}
	s.user = u
	if s.b.opts.Routes != nil {
		s.policy = s.b.opts.Routes.Policy(u)
	}
	if !s.user.MaySendAs(from) {
		s.b.log.Info("sender refused", "user", s.user.Name, "from", from)
		return errFromNotAllowed(from, s.user.Name)
	}
	// A transaction starts only while the in-flight budget has room for
	// it (as much as it declares with SIZE=): refused now, the client
	// retries before sending its message, not after.
	var declared int64
	if opts != nil {
		declared = opts.Size
	}
	if free := s.b.inflight.available(); free <= 0 || declared > free {
		s.b.log.Warn("transaction refused: in-flight byte budget exhausted", "user", s.user.Name, "declared", declared, "available", free)
		return errBusy
	}
	if r := s.checkSPF(from); r != nil {
		return r
	}
	s.from = from
	if opts != nil {
		s.mailOpts = *opts
	}
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	return s.authenticated(func() *reply { return s.rcpt(to, opts) })
}

func (s *session) rcpt(to string, opts *smtp.RcptOptions) *reply {
	if at := strings.LastIndexByte(to, '@'); at < 1 || at == len(to)-1 || strings.ContainsAny(to, " \t<>") {
		return errBadAddress("recipient", to)
	}
	if q := s.b.opts.Quota; q != nil {
		if err := q.Check(s.user.Name, s.policy.Limits, len(s.rcpts), 1); err != nil {
			s.b.log.Info("recipient over limit", "user", s.user.Name, "rcpt", to, "err", err)
			return quotaReply(err)
		}
	}
	if r := s.suppressed(to); r != nil {
		return r
	}
	r := queue.Recipient{Addr: to, Status: queue.Queued}
	if opts != nil {
		for _, n := range opts.Notify {
			r.Notify = append(r.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			r.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	s.rcpts = append(s.rcpts, r)
	return nil
}

// Data counts the message under the outcome of the reply data chose
// (replies.go), then answers.
func (s *session) Data(r io.Reader) error {
	return s.authenticated(func() *reply {
		res := s.data(r)
		metrics.Submissions.WithLabelValues(string(res.outcome)).Inc()
		return res
	})
}

// authenticated runs a command of a mail transaction (MAIL, RCPT, DATA)
// and answers it, or refuses it before AUTH: go-smtp lets every command
// through without authentication.
func (s *session) authenticated(cmd func() *reply) error {
	if s.user == nil {
		return s.answer(errAuthRequired)
	}
	return s.answer(cmd())
}

// answer is how a command's reply leaves the session: nil for none, else
// the bare *smtp.SMTPError go-smtp writes as it is (replies.go), once the
// refusal is counted (tally).
func (s *session) answer(r *reply) error {
	if r == nil {
		return nil
	}
	return s.tally(r).se
}

// tally counts a refused command. Once MaxErrors are reached the session
// ends: a client that keeps being refused (probing recipients or senders,
// or a script stuck in a loop) does not keep its connection, as Postfix's
// smtpd_hard_error_limit does.
func (s *session) tally(r *reply) *reply {
	if s.b.opts.MaxErrors <= 0 || r.se.Code < 400 {
		return r
	}
	s.refused++
	if s.refused < s.b.opts.MaxErrors {
		return r
	}
	s.b.log.Warn("too many errors; ending session", "remote", s.remoteIP, "errors", s.refused, "last", r.se.Message)
	end := errTooManyErrors(s.refused, r.se.Message)
	s.closeWith(end.se)
	return end
}

// closeWith writes a final reply and closes the connection. go-smtp has no
// way for a backend to end a session, so the reply is written here, on the
// connection as it is now (TLS or not); go-smtp's own attempt to write it
// then fails silently and its next read ends the session.
func (s *session) closeWith(final *smtp.SMTPError) {
	conn := s.conn.Conn()
	if s.b.opts.WriteTimeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(s.b.opts.WriteTimeout))
	}
	io.WriteString(conn, replyLine(final))
	conn.Close()
}

// data checks, completes and queues one message, and returns the reply
// (with its outcome, which Data counts).
//
// The message is held in heldBuffers (budget.go): as received, then, only
// when that changes it, with its line endings normalized, and, only when
// its long lines must be re-encoded, rewritten as queued. The relay's own
// header fields and the header's changes otherwise take the place of the
// header block in the buffer the message arrived in, so its body is never
// copied. Each buffer replaces the one before, so a message is held at
// most twice at once, and each is held to max_message_bytes: what is
// queued is no larger than what the relay accepts. Its header is parsed once (parseMessage),
// and every check and change works from that reading.
func (s *session) data(r io.Reader) *reply {
	start := s.b.opts.Now()
	limit := s.b.opts.MaxMessageBytes
	// cur holds msg; each rewrite releases the buffer it replaces.
	cur := s.buffer()
	defer func() { cur.release() }()
	if err := readMessage(r, s.mailOpts.Size, cur); err != nil {
		switch {
		case errors.Is(err, smtp.ErrDataTooLarge), errors.Is(err, errOverLimit):
			return errTooLarge(limit)
		case errors.Is(err, errOverBudget):
			s.b.log.Warn("message refused: in-flight byte budget exhausted", "user", s.user.Name, "received", len(cur.b))
			return errBusy
		case errors.Is(err, smtp.ErrTooLongLine):
			// go-smtp's reader fails for good once a line passes its
			// limit: the session cannot go on, but the client must
			// still read a permanent refusal, not a dropped connection
			// it would retry.
			s.b.log.Info("message refused", "user", s.user.Name, "reason", "line longer than max_line_length")
			refusal := errLineTooLong(s.b.opts.MaxLineLength)
			s.endAfterData(refusal.se)
			return refusal
		}
		// The client went away or aborted BDAT; there is no one to answer.
		return errTemporary
	}

	msg := cur.b
	if bare := bareLineEndings(msg); bare > 0 {
		if s.b.opts.RejectBareLineEndings {
			s.b.log.Info("message refused", "user", s.user.Name, "reason", "bare line endings")
			return errBadLineEndings
		}
		norm := s.buffer()
		if err := norm.reserve(len(msg) + bare); err != nil {
			return s.bufferReply(err)
		}
		norm.b = appendNormalized(norm.b, msg)
		cur.release()
		cur, msg = norm, norm.b
	}
	pm, refusal := parseMessage(msg)
	if refusal != nil {
		s.b.log.Info("message refused", "user", s.user.Name, "reason", "malformed header", "reply", refusal.String())
		return refusal
	}
	if refusal = s.checkHeaderSenders(pm); refusal != nil {
		return refusal
	}
	var spfHeaders []string
	if s.spfResult != nil {
		spfHeaders = append(spfHeaders, spfHeader(s.spfResult))
	}
	for _, f := range pm.fromAddresses() {
		if domainOf(f.Address) == domainOf(s.from) {
			continue
		}
		if refusal = s.checkSPF(f.Address); refusal != nil {
			return refusal
		}
		if s.spfResult != nil {
			spfHeaders = append(spfHeaders, spfHeader(s.spfResult))
		}
	}

	id := queue.NewID(start)
	m := &queue.Message{
		ID:         id,
		User:       s.user.Name,
		From:       s.from,
		Recipients: append([]queue.Recipient(nil), s.rcpts...),
		Route:      s.user.Route,
		UTF8:       s.mailOpts.UTF8,
		EnvID:      s.mailOpts.EnvelopeID,
		Ret:        string(s.mailOpts.Return),
		Created:    start,
		Tags:       s.tags,
		Metadata:   s.metadata,
	}
	var added bytes.Buffer
	s.writeReceived(&added, id, start)
	for _, h := range spfHeaders {
		added.WriteString(h)
	}
	if pm.header.Get("Message-Id") == "" {
		m.MessageID = "<" + id + "@" + s.b.opts.Hostname + ">"
		fmt.Fprintf(&added, "Message-ID: %s\r\n", m.MessageID)
	} else {
		m.MessageID = pm.header.Get("Message-Id")
	}
	if pm.header.Get("Date") == "" {
		fmt.Fprintf(&added, "Date: %s\r\n", start.Format(time.RFC1123Z))
	}

	// The message as queued: the relay's headers, then the message with
	// the user's display name and Reply-To filled in where the client left
	// them out (never replacing its own; see sender.go), and lines over
	// RFC 5322's 998 octets re-encoded, unless the client signed the
	// message: it then leaves as signed.
	changes := senderDefaults(pm, s.user)
	queued := cur
	if len(pm.header.Values("DKIM-Signature")) == 0 && hasLongLine(msg) {
		queued = s.buffer()
		// Room for all of it unless re-encoding grows it; the writes are
		// what is held to the limit and the budget, so a refusal is
		// theirs to tell.
		_ = queued.reserve(added.Len() + len(msg) + changes.growth(pm.header))
		_, err := queued.Write(added.Bytes())
		if err == nil {
			err = rewriteLongLines(queued, pm, changes)
		}
		if err != nil {
			queued.release()
			var ne *notEncodableError
			if errors.As(err, &ne) {
				s.b.log.Info("message refused", "user", s.user.Name, "reason", "long line", "where", ne.where)
				return errLongLineNotEncodable(ne.where)
			}
			return s.bufferReply(err)
		}
		cur.release()
		cur = queued
	} else {
		// In place: the header block gives way to the relay's fields and
		// the header as changed, and the body stays where it arrived
		// (the buffer keeps room in front for this). pm's strings stay
		// valid; its slices of the message do not, and are not used
		// after this.
		if err := replaceHeader(queued, pm, added.Bytes(), changes); err != nil {
			return s.bufferReply(err)
		}
	}
	if refusal := s.sign(pm, queued); refusal != nil {
		return refusal
	}
	body := queued.b

	// Count the recipients atomically now: RCPT-time checks on parallel
	// connections may each have seen room for the same last slot. The
	// count is made durable in the transaction that queues the message.
	var reservation quota.Reservation
	var alsoWrite []queue.TxHook
	if q := s.b.opts.Quota; q != nil {
		var err error
		if reservation, err = q.Hold(s.user.Name, s.policy.Limits, len(m.Recipients)); err != nil {
			s.b.log.Info("message over limit", "user", s.user.Name, "rcpts", len(m.Recipients), "err", err)
			return quotaReply(err)
		}
		alsoWrite = append(alsoWrite, reservation.Write)
	}
	received, counted := s.receivedEvents(m, start)
	alsoWrite = append(alsoWrite, received...)
	if s.alsoWrite != nil {
		alsoWrite = append(alsoWrite, s.alsoWrite(id))
	}
	if err := s.b.opts.Spool.Add(m, body, alsoWrite...); err != nil {
		s.b.log.Error("queue write failed", "user", s.user.Name, "err", err)
		if q := s.b.opts.Quota; q != nil {
			q.Release(reservation)
		}
		return errStorage
	}
	counted()
	s.b.log.Info("message queued", "id", id, "user", s.user.Name, "from", s.from,
		"rcpts", len(m.Recipients), "size", len(body), "message_id", m.MessageID,
		"duration", s.b.opts.Now().Sub(start))
	return queuedReply(id)
}

// buffer returns an empty message buffer held in the in-flight budget and
// bounded by max_message_bytes, with room in front for the fields the
// relay adds (Received, Received-SPF, Message-ID, Date, DKIM-Signature)
// and the sender defaults, so that they go before the message without
// copying it.
func (s *session) buffer() *heldBuffer {
	return newHeldBuffer(s.b.inflight, int(s.b.opts.MaxMessageBytes), addedFieldsRoom)
}

// addedFieldsRoom is the room a message buffer keeps in front: what the
// relay adds is usually well under 2 KiB; more still works, by moving the
// message once.
const addedFieldsRoom = 4096

// bufferReply answers a heldBuffer that could not grow while the message
// was rewritten.
func (s *session) bufferReply(err error) *reply {
	if errors.Is(err, errOverBudget) {
		s.b.log.Warn("message refused: in-flight byte budget exhausted", "user", s.user.Name)
		return errBusy
	}
	s.b.log.Info("message refused", "user", s.user.Name, "reason", "too large as queued")
	return errTooLargeAsQueued(s.b.opts.MaxMessageBytes)
}

// checkHeaderSenders checks every address of the fields that say who a
// message is from: From (required), Sender (Outlook shows "Sender on
// behalf of From"), Resent-From and Resent-Sender. Each must be one the
// user may send as, like the envelope sender. The From addresses are the
// ones parseMessage read. An empty Sender or Resent-* field names no one
// and passes.
func (s *session) checkHeaderSenders(m *parsedMessage) *reply {
	froms := m.fromAddresses()
	if len(froms) == 0 {
		return errNoFromHeader
	}
	for _, f := range froms {
		if !s.user.MaySendAs(f.Address) {
			s.b.log.Info("sender refused", "user", s.user.Name, "header_from", f.Address)
			return errFromNotAllowed(f.Address, s.user.Name)
		}
	}
	for _, field := range []string{"Sender", "Resent-From", "Resent-Sender"} {
		for _, v := range m.header.Values(field) {
			if v == "" {
				continue
			}
			addrs, err := headerAddresses([]string{v})
			if err != nil {
				return errHeaderUnparseable(field, err)
			}
			for _, a := range addrs {
				if !s.user.MaySendAs(a.Address) {
					s.b.log.Info("sender refused", "user", s.user.Name, "header", field, "address", a.Address)
					return errNotAllowed(field, a.Address, s.user.Name)
				}
			}
		}
	}
	return nil
}

// lingerQuiet is how long the rest of a refused DATA may pause before
// endAfterData closes the connection.
const lingerQuiet = 5 * time.Second

// endAfterData sends the final reply to a DATA whose input go-smtp can no
// longer read, and ends the session. The client is usually still sending
// its message and reads the reply only once it has sent it all: closing at
// once, with its bytes unread, would reset the connection under it, and a
// client that sees a reset retries. So the rest of the message is read and
// dropped until its end-of-data line (or the client closes, pauses for
// lingerQuiet, or sends max_message_bytes more), and then the connection is
// closed. go-smtp's own reply to the DATA then fails silently.
func (s *session) endAfterData(final *smtp.SMTPError) {
	conn := s.conn.Conn()
	if s.b.opts.WriteTimeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(s.b.opts.WriteTimeout))
	}
	io.WriteString(conn, replyLine(final))
	// Read deadlines are go-smtp's (and lifecycle.go's) to set; a timer
	// that closes the connection bounds each pause instead.
	quiet := time.AfterFunc(lingerQuiet, func() { conn.Close() })
	defer quiet.Stop()
	const endOfData = "\r\n.\r\n"
	matched, left := 0, s.b.opts.MaxMessageBytes
	buf := make([]byte, 16<<10)
	for left > 0 && matched < len(endOfData) {
		n, err := conn.Read(buf)
		quiet.Reset(lingerQuiet)
		for _, c := range buf[:n] {
			switch {
			case matched == len(endOfData):
			case c == endOfData[matched]:
				matched++
			case c == '\r':
				matched = 1
			default:
				matched = 0
			}
		}
		left -= int64(n)
		if err != nil {
			break
		}
	}
	conn.Close()
}

// writeReceived writes the trace header RFC 5321 and RFC 6409 ask every
// relay to add. "ESMTPSA" says TLS and AUTH were used (RFC 3848).
func (s *session) writeReceived(w *bytes.Buffer, id string, now time.Time) {
	helo := sanitizeHeaderValue(s.helo)
	with := s.protocol
	if with == "" {
		with = "ESMTPSA"
	}
	fmt.Fprintf(w, "Received: from %s ([%s])\r\n\tby %s (outbound) with %s id %s;\r\n\t%s\r\n",
		helo, s.remoteIP, s.b.opts.Hostname, with, id, now.Format(time.RFC1123Z))
}

// sanitizeHeaderValue keeps client-chosen text from breaking a header line.
func sanitizeHeaderValue(v string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}

func (s *session) Reset() {
	s.from = ""
	s.spfResult = nil
	s.mailOpts = smtp.MailOptions{}
	s.rcpts = nil
}

func (s *session) Logout() error { return nil }

// slogPrinter routes go-smtp's own error log to slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.log.Warn(fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.log.Warn(fmt.Sprint(v...)) }
