package relay

import (
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/quota"
	"outbound/spf"
	"outbound/suppression"
)

// Every reply the relay sends on its own account is built here, so that the
// codes stay consistent and no internal error text ever reaches a client.
// go-smtp turns any error that is not an *smtp.SMTPError into a permanent
// "554 5.0.0 <error text>", which would both bounce mail that should be
// retried and leak internals: session methods return only the SMTPError of
// one of these replies (session.answer).
//
// Each reply also carries what it counts as when it answers DATA (the
// result of outbound_submissions_total), chosen here with its code and
// text: two replies with the same code may count differently (errBusy and
// errStorage), and no one has to guess the result from the code later.

// reply is one of the relay's replies and what it counts as. It is not an
// error on purpose: go-smtp type-asserts *smtp.SMTPError (it does not
// unwrap), so a reply handed to it as an error would go out as 554 5.0.0;
// being no error, it cannot be returned by mistake.
type reply struct {
	se      *smtp.SMTPError
	outcome outcome
	// retryIn is, for a quota refusal, when the next slot frees up (an
	// HTTP front end's Retry-After); 0 otherwise.
	retryIn time.Duration
	// queued is the queue ID of a message queuedReply accepted.
	queued string
}

// outcome is a result of outbound_submissions_total (metrics.Submissions).
type outcome string

const (
	outcomeQueued = outcome("queued")
	// outcomeRefused: refused by policy (sender, SPF, line endings,
	// header, authentication); sending again as it is cannot help.
	outcomeRefused  = outcome("refused")
	outcomeTooLarge = outcome("too_large")
	outcomeQuota    = outcome("quota")
	// outcomeStorage is a failed queue write, and only that: operators
	// alert on it as a full disk.
	outcomeStorage   = outcome("storage_error")
	outcomeTemporary = outcome("temporary_error")
)

func newReply(o outcome, code int, enhanced smtp.EnhancedCode, format string, args ...any) *reply {
	return &reply{
		se:      &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: fmt.Sprintf(format, args...)},
		outcome: o,
	}
}

// errMessageRefused refuses a message whose form the relay cannot pass on
// (RFC 5322: line endings, header, line length) with a permanent 550
// 5.6.0: the same bytes sent again fare no better.
func errMessageRefused(format string, args ...any) *reply {
	return newReply(outcomeRefused, 550, smtp.EnhancedCode{5, 6, 0}, "Message refused: "+format, args...)
}

// String is the reply as the client reads it, for logs and tests.
func (r *reply) String() string { return strings.TrimSuffix(replyLine(r.se), "\r\n") }

// replyLine is a reply as written on the connection, for the replies the
// relay writes itself rather than through go-smtp (a session it ends, a
// connection over the limits).
func replyLine(se *smtp.SMTPError) string {
	e := se.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", se.Code, e[0], e[1], e[2], se.Message)
}

var (
	errTLSRequired = newReply(outcomeRefused, 530, smtp.EnhancedCode{5, 7, 0},
		"Must issue a STARTTLS command first: authentication is accepted only over TLS")
	errAuthRequired = newReply(outcomeRefused, 530, smtp.EnhancedCode{5, 7, 0},
		"Authentication required: log in with AUTH before sending mail (this relay never relays for unauthenticated clients)")
	errAuthFailed = newReply(outcomeRefused, 535, smtp.EnhancedCode{5, 7, 8},
		"Authentication failed: user name or password is wrong")
	errAuthMechanism = newReply(outcomeRefused, 504, smtp.EnhancedCode{5, 5, 4},
		"Unsupported authentication mechanism: use PLAIN or LOGIN")
	errTemporary = newReply(outcomeTemporary, 451, smtp.EnhancedCode{4, 3, 0},
		"Temporary local problem: the message was not stored; please try again later")
	// errAuthUnavailable answers AUTH when the credentials cannot be
	// checked (RFC 4954's temporary authentication failure): a cluster
	// node that cannot reach its users past [store] cache_max_stale.
	errAuthUnavailable = newReply(outcomeTemporary, 454, smtp.EnhancedCode{4, 7, 0},
		"Temporary authentication failure: the user database cannot be reached; try again later")
	// errLimitsUnknown answers at RCPT or DATA when the user's sending
	// limits cannot be judged: the shared counts of a cluster cannot be
	// reached and this node may not judge alone (package quota, Shared).
	errLimitsUnknown = newReply(outcomeTemporary, 451, smtp.EnhancedCode{4, 3, 0},
		"Sending limits cannot be checked right now; try again later")
	// errShuttingDown ends sessions when the relay stops (Shutdown,
	// lifecycle.go, which writes it on the connection or returns it before
	// any session method runs): it answers no DATA of its own, so only its
	// SMTPError is kept.
	errShuttingDown = newReply(outcomeTemporary, 421, smtp.EnhancedCode{4, 3, 2},
		"Service shutting down: closing the connection; please try again later").se
	// errTooManyConnections is written by LimitConnections to a connection
	// over the limits, before any session.
	errTooManyConnections = newReply(outcomeTemporary, 421, smtp.EnhancedCode{4, 7, 0},
		"Too many connections, try again later")
	// errStorage answers a failed queue write (full disk, I/O error): the
	// message was not stored and the client keeps it and retries.
	errStorage = newReply(outcomeStorage, 452, smtp.EnhancedCode{4, 3, 1},
		"Insufficient system storage: the message was not stored; please try again later")
	errBadLineEndings     = errMessageRefused("it contains a bare CR or LF; lines must end with CRLF")
	errNoFromHeader       = errMessageRefused("it has no From header")
	errHeaderStartsFolded = errMessageRefused("its header begins with a continuation line (white space before the first field name)")
	// errBusy answers a transaction while the messages being received
	// already hold the in-flight byte budget (submission.max_bytes_in_flight).
	// The same 452 4.3.1 as errStorage, but no disk is full: it counts as
	// a temporary error, not a storage error.
	errBusy = newReply(outcomeTemporary, 452, smtp.EnhancedCode{4, 3, 1},
		"Insufficient system resources: too many messages are being received at once; please try again shortly")
)

// errHeaderSpaceBeforeColon refuses "From :" and the like: see parseHeader.
func errHeaderSpaceBeforeColon(name string) *reply {
	return errMessageRefused("header field %q has white space before its colon; write %q (RFC 5322)", name+" :", name+":")
}

func errHeaderBadName(name string) *reply {
	return errMessageRefused("header field name %.60q is not allowed (RFC 5322: printable US-ASCII other than the colon)", name)
}

func errHeaderLineNoColon(line string) *reply {
	return errMessageRefused("header line %.60q has no colon; an empty line must separate the header from the body", line)
}

func errHeaderUnparseable(field string, err error) *reply {
	return errMessageRefused("its %s header cannot be parsed (%s)", field, shortErr(err))
}

// shortErr is a parse error of net/mail short enough for a reply line.
func shortErr(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "mail: ")
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return msg
}

// errLineTooLong answers a DATA line longer than go-smtp's line limit
// (submission.max_line_length): permanent, as sending again cannot help.
func errLineTooLong(limit int) *reply {
	return errMessageRefused("a line is longer than %d bytes (the relay's limit); wrap long lines, or encode the part as quoted-printable or base64", limit)
}

// errLongLineNotEncodable answers a line over RFC 5322's 998 octets that
// the relay cannot re-encode (see longlines.go).
func errLongLineNotEncodable(where string) *reply {
	return errMessageRefused("a line in %s is longer than 998 octets (RFC 5322) and cannot be re-encoded; wrap it, or encode the part as quoted-printable or base64", where)
}

func errTooLarge(max int64) *reply {
	return newReply(outcomeTooLarge, 552, smtp.EnhancedCode{5, 3, 4},
		"Message too large: the limit is %d bytes", max)
}

// errTooLargeAsQueued: the message fitted as sent, but not once bare line
// endings became CRLF, long lines were re-encoded and the relay's headers
// were added; what is queued is held to the same limit.
func errTooLargeAsQueued(max int64) *reply {
	return newReply(outcomeTooLarge, 552, smtp.EnhancedCode{5, 3, 4},
		"Message too large: the limit is %d bytes, counted after bare line endings become CRLF, long lines are re-encoded and trace headers are added", max)
}

func errFromNotAllowed(from, user string) *reply {
	if from == "" {
		from = "<>"
	}
	return errNotAllowed("From", from, user)
}

// errNotAllowed refuses an address in a header field that names the
// sender (From, Sender, Resent-From, Resent-Sender): receivers show it as
// who the message is from, or on whose behalf it was sent.
func errNotAllowed(field, addr, user string) *reply {
	return newReply(outcomeRefused, 550, smtp.EnhancedCode{5, 7, 1},
		"%s <%s> is not allowed for user <%s>: send as an address this login may use", field, addr, user)
}

func errBadAddress(what, addr string) *reply {
	return newReply(outcomeRefused, 501, smtp.EnhancedCode{5, 1, 3}, "Bad %s address syntax: <%s>", what, addr)
}

// errSuppressed refuses a recipient on the user's suppression list with
// 550 5.1.1, as its server did: since when, the original reason, and how
// to lift it, so that whoever reads the bounce knows what to do.
func errSuppressed(addr string, e *suppression.Entry) *reply {
	return newReply(outcomeRefused, 550, smtp.EnhancedCode{5, 1, 1},
		"Recipient <%s> is suppressed since %s (%s: %s); if the address works again, lift it with "+
			"\"outbound suppression del %s\" or ask the relay's operator",
		addr, e.Created.UTC().Format("2006-01-02"), e.Kind, oneLine(e.Reason), addr)
}

// oneLine keeps a quoted reply on one line of ours.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// errOverQuota answers a recipient or message over the user's sending
// limits: 450 4.7.1 naming the limit and when room frees up, or 550 5.7.1
// when the limit is 0 and waiting cannot help (the user may not send at
// all: a refusal by policy, not a quota to wait for). A message with more
// recipients than the limit also gets 450: the recipient refused now fits
// in a later message.
func errOverQuota(ex *quota.ExceededError) *reply {
	switch {
	case ex.Limit <= 0:
		return newReply(outcomeRefused, 550, smtp.EnhancedCode{5, 7, 1}, "%s", ex.Error())
	case !ex.Temporary():
		return newReply(outcomeQuota, 450, smtp.EnhancedCode{4, 7, 1},
			"%s limit of %d reached for %s by this message's %d recipients; send the rest in a later message",
			ex.Window, ex.Limit, ex.User, ex.Requested)
	}
	return newReply(outcomeQuota, 450, smtp.EnhancedCode{4, 7, 1}, "%s", ex.Error())
}

// errSPFTemporary answers an SPF evaluation that failed temporarily under
// "enforce", naming the fix (spf.Result.Fix).
func errSPFTemporary(fix string) *reply {
	return newReply(outcomeTemporary, 451, smtp.EnhancedCode{4, 7, 24}, "SPF check failed temporarily: %s", fix)
}

// errSPFNotAligned refuses a sender domain whose SPF does not authorize
// the user's upstream under "enforce", naming the include to add.
func errSPFNotAligned(verdict spf.Verdict, fix string) *reply {
	return newReply(outcomeRefused, 550, smtp.EnhancedCode{5, 7, 23}, "SPF alignment failed (%s): %s", verdict, fix)
}

// errSourceThrottled refuses AUTH from a source that failed too often
// (auth.Throttle), for the time left.
func errSourceThrottled(left time.Duration) *reply {
	return newReply(outcomeTemporary, 421, smtp.EnhancedCode{4, 7, 0},
		"Too many failed logins from this address; AUTH is refused for %s", roundUp(left))
}

// errLoginThrottled refuses AUTH as one login from a source that failed
// too often for it.
func errLoginThrottled(left time.Duration) *reply {
	return newReply(outcomeTemporary, 421, smtp.EnhancedCode{4, 7, 0},
		"Too many failed logins for this user from this address; AUTH as this user is refused for %s", roundUp(left))
}

// errTooManyErrors ends a session whose commands were refused max_errors
// times, repeating the last refusal.
func errTooManyErrors(n int, last string) *reply {
	return newReply(outcomeTemporary, 421, smtp.EnhancedCode{4, 7, 0},
		"Too many errors in this session (%d); closing the connection. The last one was: %s", n, last)
}

// errTooManyRecipients is go-smtp's own answer past max_recipients, given
// by Submit, where go-smtp does not count the recipients.
func errTooManyRecipients(max int) *reply {
	return newReply(outcomeTemporary, 452, smtp.EnhancedCode{4, 5, 3}, "Maximum limit of %v recipients reached", max)
}

func queuedReply(id string) *reply {
	r := newReply(outcomeQueued, 250, smtp.EnhancedCode{2, 0, 0}, "Ok: queued as %s", id)
	r.queued = id
	return r
}
func roundUp(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()+0.999))
	}
	return fmt.Sprintf("%dm", int(d.Minutes()+0.999))
}
