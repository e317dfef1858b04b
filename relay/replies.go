package relay

import (
	"fmt"

	"github.com/emersion/go-smtp"
)

// Every reply the relay sends on its own account is built here, so that the
// codes stay consistent and no internal error text ever reaches a client.
// go-smtp turns any error that is not an *smtp.SMTPError into a permanent
// "554 5.0.0 <error text>", which would both bounce mail that should be
// retried and leak internals: session methods return only these values.

func reply(code int, enhanced smtp.EnhancedCode, format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: fmt.Sprintf(format, args...)}
}

var (
	errTLSRequired = reply(530, smtp.EnhancedCode{5, 7, 0},
		"Must issue a STARTTLS command first: authentication is accepted only over TLS")
	errAuthRequired = reply(530, smtp.EnhancedCode{5, 7, 0},
		"Authentication required: log in with AUTH before sending mail (this relay never relays for unauthenticated clients)")
	errAuthFailed = reply(535, smtp.EnhancedCode{5, 7, 8},
		"Authentication failed: user name or password is wrong")
	errAuthMechanism = reply(504, smtp.EnhancedCode{5, 5, 4},
		"Unsupported authentication mechanism: use PLAIN or LOGIN")
	errTemporary = reply(451, smtp.EnhancedCode{4, 3, 0},
		"Temporary local problem: the message was not stored; please try again later")
	// errShuttingDown ends sessions when the relay stops (Shutdown).
	errShuttingDown = reply(421, smtp.EnhancedCode{4, 3, 2},
		"Service shutting down: closing the connection; please try again later")
	// errStorage answers a failed queue write (full disk, I/O error): the
	// message was not stored and the client keeps it and retries.
	errStorage = reply(452, smtp.EnhancedCode{4, 3, 1},
		"Insufficient system storage: the message was not stored; please try again later")
	errBadLineEndings = reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: it contains a bare CR or LF; lines must end with CRLF")
	errNoFromHeader = reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: it has no From header")
	errHeaderStartsFolded = reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: its header begins with a continuation line (white space before the first field name)")
	// errBusy answers a transaction while the messages being received
	// already hold the in-flight byte budget (submission.max_bytes_in_flight).
	errBusy = reply(452, smtp.EnhancedCode{4, 3, 1},
		"Insufficient system resources: too many messages are being received at once; please try again shortly")
)

// errHeaderSpaceBeforeColon refuses "From :" and the like: see parseHeader.
func errHeaderSpaceBeforeColon(name string) *smtp.SMTPError {
	return reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: header field %q has white space before its colon; write %q (RFC 5322)", name+" :", name+":")
}

func errHeaderBadName(name string) *smtp.SMTPError {
	return reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: header field name %.60q is not allowed (RFC 5322: printable US-ASCII other than the colon)", name)
}

func errHeaderLineNoColon(line string) *smtp.SMTPError {
	return reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: header line %.60q has no colon; an empty line must separate the header from the body", line)
}

func errHeaderUnparseable(field string, err error) *smtp.SMTPError {
	return reply(550, smtp.EnhancedCode{5, 6, 0}, "Message refused: its %s header cannot be parsed (%s)", field, shortErr(err))
}

// errLineTooLong answers a DATA line longer than go-smtp's line limit
// (submission.max_line_length): permanent, as sending again cannot help.
func errLineTooLong(limit int) *smtp.SMTPError {
	return reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: a line is longer than %d bytes (the relay's limit); wrap long lines, or encode the part as quoted-printable or base64", limit)
}

// errLongLineNotEncodable answers a line over RFC 5322's 998 octets that
// the relay cannot re-encode (see longlines.go).
func errLongLineNotEncodable(where string) *smtp.SMTPError {
	return reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: a line in %s is longer than 998 octets (RFC 5322) and cannot be re-encoded; wrap it, or encode the part as quoted-printable or base64", where)
}

func errTooLarge(max int64) *smtp.SMTPError {
	return reply(552, smtp.EnhancedCode{5, 3, 4},
		"Message too large: the limit is %d bytes", max)
}

// errTooLargeAsQueued: the message fitted as sent, but not once bare line
// endings became CRLF, long lines were re-encoded and the relay's headers
// were added; what is queued is held to the same limit.
func errTooLargeAsQueued(max int64) *smtp.SMTPError {
	return reply(552, smtp.EnhancedCode{5, 3, 4},
		"Message too large: the limit is %d bytes, counted after bare line endings become CRLF, long lines are re-encoded and trace headers are added", max)
}

func errFromNotAllowed(from, user string) *smtp.SMTPError {
	if from == "" {
		from = "<>"
	}
	return errNotAllowed("From", from, user)
}

// errNotAllowed refuses an address in a header field that names the
// sender (From, Sender, Resent-From, Resent-Sender): receivers show it as
// who the message is from, or on whose behalf it was sent.
func errNotAllowed(field, addr, user string) *smtp.SMTPError {
	return reply(550, smtp.EnhancedCode{5, 7, 1},
		"%s <%s> is not allowed for user <%s>: send as an address this login may use", field, addr, user)
}

func errBadAddress(what, addr string) *smtp.SMTPError {
	return reply(501, smtp.EnhancedCode{5, 1, 3}, "Bad %s address syntax: <%s>", what, addr)
}

func queuedReply(id string) *smtp.SMTPError {
	return reply(250, smtp.EnhancedCode{2, 0, 0}, "Ok: queued as %s", id)
}
