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
	// errStorage answers a failed queue write (full disk, I/O error): the
	// message was not stored and the client keeps it and retries.
	errStorage = reply(452, smtp.EnhancedCode{4, 3, 1},
		"Insufficient system storage: the message was not stored; please try again later")
	errBadLineEndings = reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: it contains a bare CR or LF; lines must end with CRLF")
	errNoFromHeader = reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: it has no From header")
	errMalformedHeader = reply(550, smtp.EnhancedCode{5, 6, 0},
		"Message refused: its header is malformed")
)

func errTooLarge(max int64) *smtp.SMTPError {
	return reply(552, smtp.EnhancedCode{5, 3, 4},
		"Message too large: the limit is %d bytes", max)
}

func errFromNotAllowed(from, user string) *smtp.SMTPError {
	if from == "" {
		from = "<>"
	}
	return reply(550, smtp.EnhancedCode{5, 7, 1},
		"From <%s> is not allowed for user <%s>: send as an address this login may use", from, user)
}

func errBadAddress(what, addr string) *smtp.SMTPError {
	return reply(501, smtp.EnhancedCode{5, 1, 3}, "Bad %s address syntax: <%s>", what, addr)
}

func queuedReply(id string) *smtp.SMTPError {
	return reply(250, smtp.EnhancedCode{2, 0, 0}, "Ok: queued as %s", id)
}
