package bounce

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"syscall"

	"github.com/emersion/go-smtp"
)

// Phase says how far a delivery attempt had got with the upstream when it
// failed. The same failure means something else before the upstream is
// ready to take mail than in the transaction, and a lost connection means
// something else before the message went out in full than after.
type Phase int

const (
	// Setup is everything before the upstream is ready to take mail:
	// connecting, the greeting, EHLO, STARTTLS and the TLS handshake, AUTH.
	Setup Phase = iota
	// Transaction is MAIL, RCPT, DATA and the writing of the message,
	// until its last byte: the upstream does not have the message yet.
	Transaction
	// EndOfData is after the whole message went out, up to the final
	// dot: the upstream's reply to it is awaited.
	EndOfData
)

// Judge is the verdict on a delivery attempt that failed with err in
// phase: [ClassifyError], then the rules that depend on the phase, which
// also decide what the sender does about the upstream (UpstreamWide) and
// the message (MayFailOver):
//
//   - Setup: the failure is never permanent, whatever the reply said. A 5xx
//     to EHLO or AUTH, a TLS failure or a refused connection is a problem
//     of the upstream or of its configuration (a rotated password, the
//     wrong port, a smarthost that dislikes our name), never of the message
//     or a recipient: it gets fixed, and the message waits for the fix
//     rather than bounce (Postfix's smtp_sasl_auth_soft_bounce, for every
//     step of the setup). A 5.x.x status becomes 4.x.x, which RFC 3463
//     allows for a persistent transient failure. The upstream as a whole
//     failed, and it never had the message, so another upstream may take
//     it.
//   - Transaction and EndOfData: the upstream as a whole failed when it is
//     closing the session (421, whatever the verdict) or the failure is
//     temporary rate limiting or a network failure; a failure is the
//     message's or the recipient's otherwise. A temporary failure may fail
//     over, a permanent one is final wherever the message goes.
//   - EndOfData: an error that is not a reply (the connection was lost,
//     the reply timed out) leaves it unknown whether the upstream took the
//     message, so it never fails over: the message would go out twice.
//     A reply (a 4xx to the message) is a refusal and may fail over.
//
// A nil error yields the zero Verdict.
func Judge(err error, phase Phase) Verdict {
	v := ClassifyError(err)
	if err == nil {
		return v
	}
	if phase == Setup {
		if v.Class == Permanent {
			v.Class = Temporary
			v.Status = "4" + v.Status[1:]
			v.Explanation += retrySuffix
		}
		v.UpstreamWide, v.MayFailOver = true, true
		return v
	}
	code := replyCode(err)
	v.UpstreamWide = code == 421 ||
		v.Class == Temporary && (v.Category == RateLimited || v.Category == Network)
	v.MayFailOver = v.Class == Temporary && (phase != EndOfData || code != 0)
	return v
}

// replyCode is the code of the upstream reply err holds (see
// ClassifyError), or 0 when err is no reply: a network, TLS or local
// failure.
func replyCode(err error) int {
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return smtpErr.Code
	}
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		return protoErr.Code
	}
	return 0
}

// ClassifyError judges an error from a delivery attempt, looking through
// wrapping with errors.As:
//
//   - an *smtp.SMTPError (go-smtp's client) or a *textproto.Error is an
//     upstream reply and goes through [Classify];
//   - TLS and certificate errors are tls, temporary: a handshake that fails
//     closed is a configuration problem on one side or the other, never a
//     reason to bounce the message;
//   - connection refused, resets, timeouts (including context deadlines),
//     DNS failures and a connection closed mid-transaction are network,
//     temporary. A name that does not resolve is temporary too: we only ever
//     dial the configured smarthost, so its name failing is the operator's
//     or the DNS's problem, not the recipient's;
//   - anything else is temporary "other". An unknown error may still say
//     something recognisable in its text ("connection refused" from a
//     proxy), which can make the category more specific, but text alone never
//     makes an unknown error permanent.
//
// It knows nothing of the phase the attempt failed in: a sender judges
// its attempts with [Judge], which adds the rules that depend on it.
// A nil error yields the zero Verdict.
func ClassifyError(err error) Verdict {
	if err == nil {
		return Verdict{}
	}

	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return Classify(smtpErr.Code, enhancedString(smtpErr.EnhancedCode), smtpErr.Message)
	}
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		return Classify(protoErr.Code, "", protoErr.Msg)
	}

	if v, ok := classifyTLSError(err); ok {
		return v
	}
	if v, ok := classifyNetError(err); ok {
		return v
	}

	if v := Classify(0, "", err.Error()); v.Class == Temporary && v.Category != Other {
		return v
	}
	return temporary(Other, 0, 0, "the delivery attempt failed with an unexpected error")
}

// enhancedString formats go-smtp's EnhancedCode, which uses {0,0,0} for
// "not set" and {-1,-1,-1} for "none".
func enhancedString(c smtp.EnhancedCode) string {
	if c[0] != 2 && c[0] != 4 && c[0] != 5 {
		return ""
	}
	if c[1] < 0 || c[2] < 0 {
		return ""
	}
	return strconv.Itoa(c[0]) + "." + strconv.Itoa(c[1]) + "." + strconv.Itoa(c[2])
}

// temporary builds a temporary verdict with status 4.subject.detail; a zero
// subject and detail take the category's default status.
func temporary(cat Category, subject, detail int, why string) Verdict {
	st := status{}
	if subject != 0 || detail != 0 {
		st = status{class: 4, subject: subject, detail: detail}
	}
	return Verdict{
		Class:       Temporary,
		Category:    cat,
		Explanation: why + retrySuffix,
		Status:      dsnStatus(st, cat, Temporary),
	}
}

func classifyTLSError(err error) (Verdict, bool) {
	const subject, detail = 7, 5 // x.7.5, cryptographic failure, as Postfix reports TLS failures
	tlsVerdict := func(why string) (Verdict, bool) {
		return temporary(TLS, subject, detail, why), true
	}

	var invalid x509.CertificateInvalidError
	switch {
	case isA[x509.UnknownAuthorityError](err):
		return tlsVerdict("the upstream server's certificate is signed by an unknown authority")
	case isA[x509.HostnameError](err):
		return tlsVerdict("the upstream server's certificate does not match its host name")
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return tlsVerdict("the upstream server's certificate has expired or is not yet valid")
	case errors.As(err, &invalid):
		return tlsVerdict("the upstream server's certificate is not valid")
	case isA[*tls.CertificateVerificationError](err):
		return tlsVerdict("the upstream server's certificate could not be verified")
	case isA[tls.RecordHeaderError](err):
		// Typically implicit TLS (port 465) configured against a
		// STARTTLS port, or the other way round.
		return tlsVerdict("the upstream server did not answer with TLS; check the smarthost's port and TLS mode")
	case isA[tls.AlertError](err):
		return tlsVerdict("the upstream server aborted the TLS handshake")
	}
	// Over TCP, crypto/tls reports an alert from the peer as a *net.OpError
	// with Op "remote error" around an unexported type.
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" {
		return tlsVerdict("the upstream server aborted the TLS handshake")
	}
	return Verdict{}, false
}

// isA reports whether err, or an error it wraps, is a T (errors.As).
func isA[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

func classifyNetError(err error) (Verdict, bool) {
	// RFC 3463 details: x.4.1 no answer from host, x.4.2 bad connection,
	// x.4.3 routing (here: name resolution) failure.
	switch {
	case errors.Is(err, context.Canceled):
		// Shutdown or a cancelled worker: nothing wrong with the message.
		return temporary(Other, 0, 0, "the delivery attempt was interrupted"), true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return temporary(Network, 4, 2, "the connection to the upstream server timed out"), true
	}

	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return temporary(Network, 4, 3, "the upstream server's host name does not resolve; check the smarthost setting"), true
		}
		return temporary(Network, 4, 3, "the upstream server's host name could not be looked up"), true
	}

	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return temporary(Network, 4, 1, "the upstream server refused the connection"), true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return temporary(Network, 4, 1, "the upstream server is unreachable"), true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return temporary(Network, 4, 2, "the connection to the upstream server was reset"), true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return temporary(Network, 4, 2, "the upstream server closed the connection unexpectedly"), true
	}

	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return temporary(Network, 4, 2, "the connection to the upstream server timed out"), true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		if opErr.Op == "dial" {
			return temporary(Network, 4, 1, "the upstream server could not be reached"), true
		}
		return temporary(Network, 4, 2, "the connection to the upstream server failed"), true
	}
	return Verdict{}, false
}
