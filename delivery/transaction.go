package delivery

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/bounce"
	"outbound/queue"
	"outbound/route"
)

// One SMTP transaction with an upstream, over a pooled connection: MAIL,
// RCPT, DATA, and what it came to. A failure of the whole transaction is
// judged here, once, for the phase it happened in (bounce.Judge); the
// verdict then decides backoff and failover (Deliverer.try, deliver) and
// every recipient's fate (judge).

// result is what became of one recipient in one attempt.
type result struct {
	err     error          // nil when delivered
	reply   string         // upstream reply or error text
	verdict bounce.Verdict // err judged (bounce.Judge); zero when delivered
}

// refused is the result for a recipient refused on its own, by a reply to
// its RCPT or by our own refusal before it: a reply in the transaction,
// judged once.
func refused(err error) result {
	return result{err: err, reply: errorText(err), verdict: bounce.Judge(err, bounce.Transaction)}
}

// outcome is what one transaction through one upstream came to: a result
// per recipient when it went through, or else the failure of the whole
// transaction and its verdict, judged once for the phase it failed in.
type outcome struct {
	results map[string]result
	err     error          // the whole transaction failed; nil when it went through
	verdict bounce.Verdict // err judged (bounce.Judge); zero when err is nil or errStopped
}

// failed is the outcome of a transaction that failed as a whole in phase.
func failed(err error, phase bounce.Phase) outcome {
	return outcome{err: err, verdict: bounce.Judge(err, phase)}
}

// errStopped ends an attempt that never started because delivery is
// shutting down; the message goes back unchanged.
var errStopped = errors.New("delivery stopped")

// send runs one SMTP transaction for m. Its outcome has per-recipient
// results, or an error that applies to all of them, judged for the phase
// it happened in.
func (d *Deliverer) send(up *route.Upstream, m *queue.Message, body []byte, rcpts []string, done <-chan struct{}) outcome {
	if up.Capture {
		return d.sendCapture(m, body, rcpts)
	}
	key := connKey(up)
	c, ok := d.pool.acquire(key, done)
	if !ok {
		return outcome{err: errStopped}
	}
	reused := c != nil
	for {
		if c == nil {
			client, raw, err := dial(up, d.opts.LocalName, d.opts.ConnectTimeout, d.opts.CommandTimeout)
			if err != nil {
				d.pool.release(key, nil)
				return failed(err, bounce.Setup)
			}
			c = &upstreamConn{Client: client, raw: raw}
		}
		nullRefused := func(err error) string { return d.nullSenderFallback(m, err) }
		d.inFlight.begin(c.raw)
		results, keep, phase, err := transact(c, m, body, rcpts, d.opts.CommandTimeout, nullRefused)
		if d.inFlight.end(c.raw) && err != nil {
			// Cut off by a stop (Run's grace period ran out): what the
			// upstream made of it is unknown, so the message goes back
			// as it was and is attempted again after the restart (at
			// least once, never lost).
			c.Close()
			d.pool.release(key, nil)
			return outcome{err: errStopped}
		}
		if err != nil && reused && results == nil && staleConnection(err, phase) {
			// A pooled connection the upstream closed (or is closing with
			// a 421 idle timeout) fails on its first command; that says
			// nothing about this message.
			c.Close()
			c, reused = nil, false
			continue
		}
		if !keep {
			c.Close()
			c = nil
		}
		d.pool.release(key, c)
		if err != nil {
			return failed(err, phase)
		}
		return outcome{results: results}
	}
}

// staleConnection reports whether the first command on a reused connection
// failed because the connection is gone: a network error or a 421.
func staleConnection(err error, phase bounce.Phase) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	// A connection that failed after the whole message went out is not
	// redialed: the upstream may have the message, so sending it again
	// could duplicate it.
	return phase != bounce.EndOfData
}

// transact sends MAIL, RCPT for each recipient and DATA (pipelined when the
// upstream offers it; see smtp.Client.Envelope). An error fails the
// whole transaction; phase says whether it came before the whole message
// went out (bounce.Transaction) or after (bounce.EndOfData). keep reports
// whether the connection is in a clean state for reuse. When the upstream
// refuses MAIL, nullRefused names another sender to try once, or "" (see
// Deliverer.nullSenderFallback).
func transact(c *upstreamConn, m *queue.Message, body []byte, rcpts []string, timeout time.Duration, nullRefused func(error) string) (results map[string]result, keep bool, phase bounce.Phase, err error) {
	opts := &smtp.MailOptions{Size: int64(len(body)), UTF8: m.UTF8}
	results = make(map[string]result, len(rcpts))
	if offered, _ := c.Extension("SMTPUTF8"); m.UTF8 && !offered {
		// Nothing was sent yet: the connection stays clean for reuse.
		if rcpts, err = withoutSMTPUTF8(m.From, rcpts, body, results); err != nil {
			return nil, true, bounce.Transaction, err
		}
		if len(rcpts) == 0 {
			return results, true, bounce.Transaction, nil
		}
		opts.UTF8 = false
	}
	// MAIL, the RCPTs and DATA go in one round trip where the upstream
	// offers PIPELINING (every provider does): over a link with a real
	// round-trip time that, not bandwidth, bounds a connection's rate.
	w, replies, err := c.Envelope(m.From, opts, rcpts)
	if err == nil && replies.Mail != nil {
		// A refused MAIL opens no transaction: another MAIL may follow.
		fb := nullRefused(replies.Mail)
		if fb == "" {
			return nil, resetOK(c.Client, replies.Mail), bounce.Transaction, replies.Mail
		}
		if w, replies, err = c.Envelope(fb, opts, rcpts); err == nil && replies.Mail != nil {
			return nil, resetOK(c.Client, replies.Mail), bounce.Transaction, replies.Mail
		}
	}
	if err != nil {
		// The connection is out of step or gone (or the command could not
		// be written): it cannot be reused.
		return nil, false, bounce.Transaction, err
	}
	accepted := 0
	for i, r := range rcpts {
		rerr := replies.Rcpt[i]
		if rerr == nil {
			accepted++
			continue
		}
		// A 421 is the upstream closing the session, not a verdict on
		// this recipient: it ends the transaction, before any DATA.
		if isClosing(rerr) {
			return nil, false, bounce.Transaction, rerr
		}
		results[r] = refused(rerr)
	}
	if accepted == 0 {
		return results, resetOK(c.Client, nil), bounce.Transaction, nil
	}
	if w == nil {
		return nil, resetOK(c.Client, replies.Data), bounce.Transaction, replies.Data
	}
	// go-smtp sets no deadline while the body is written: an upstream that
	// stops reading would hold this worker and its connection slot forever.
	c.raw.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := w.Write(body); err != nil {
		w.Close()
		return nil, false, bounce.Transaction, err
	}
	// From here on the whole message went out: an error that is no reply
	// to it leaves the upstream possibly holding it (bounce.Judge).
	resp, err := w.CloseWithResponse()
	c.raw.SetWriteDeadline(time.Time{})
	if err != nil {
		return nil, isSMTPError(err), bounce.EndOfData, err
	}
	// go-smtp keeps only the text of the final 250; the code is implied.
	reply := "250 " + resp.StatusText
	for i, r := range rcpts {
		if replies.Rcpt[i] == nil {
			results[r] = result{reply: reply}
		}
	}
	return results, true, bounce.Transaction, nil
}

// withoutSMTPUTF8 prepares a message the client sent with SMTPUTF8 for an
// upstream that does not offer the extension. Clients ask for it whatever
// the message, and RFC 6531 needs it only where an address or the header
// is not ASCII: when they are ASCII after all, the message goes out
// without it (a UTF-8 body needs only 8BITMIME). What does need it can never go through this
// upstream, however long it is retried (go-smtp's client refuses to send
// such a MAIL, with an error that would read as temporary): a non-ASCII
// sender or header fails the whole transaction, a non-ASCII recipient
// fails alone, permanently, with the RFC 6531 status (x.6.7 for an
// address, x.6.9 for the header). It returns the recipients that may be
// sent to, and puts the refused ones in results.
func withoutSMTPUTF8(from string, rcpts []string, body []byte, results map[string]result) ([]string, error) {
	if !isASCII(from) {
		return nil, &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
			Message: "The upstream does not support SMTPUTF8, which the non-ASCII sender address needs"}
	}
	header, _, _ := strings.Cut(string(body), "\r\n\r\n")
	if !isASCII(header) {
		return nil, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 9},
			Message: "The upstream does not support SMTPUTF8, which the message's non-ASCII header needs"}
	}
	var sendable []string
	for _, r := range rcpts {
		if isASCII(r) {
			sendable = append(sendable, r)
			continue
		}
		err := &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
			Message: "The upstream does not support SMTPUTF8, which the non-ASCII recipient address needs"}
		results[r] = refused(err)
	}
	return sendable, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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

// isClosing reports whether err is a 421: the upstream is closing the
// session (service unavailable, too busy, rate limited).
func isClosing(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == 421
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
