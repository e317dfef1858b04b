package smtp

import (
	"errors"
	"time"
)

// EnvelopeReplies are the server's answers to the commands Envelope sent:
// nil where it accepted one.
type EnvelopeReplies struct {
	Mail error   // MAIL FROM; when set, Rcpt and Data are only the server's "no MAIL" replies, or nil when unsent
	Rcpt []error // RCPT TO, one per recipient, in order
	Data error   // DATA; nil when the DataCommand is returned
}

// Envelope (outbound's patch) opens a mail transaction: MAIL FROM, a RCPT
// TO for each of rcpts (without options), and DATA. When the server offers
// PIPELINING (RFC 2920) the commands leave in one write and their replies
// are read after, in order: one round trip instead of two plus one per
// recipient. Without it they go one at a time, as Mail, Rcpt and Data do,
// and stop at the first refusal that ends the transaction.
//
// It returns the DataCommand when DATA was accepted and at least one
// recipient was; the caller writes the message to it and closes it. replies
// says what the server answered to each command. err is a failure that
// leaves the connection unusable (a network or protocol error) or an
// argument the commands cannot carry; when it is set, replies may be
// partial.
//
// A server that answers DATA with 354 although it refused every recipient
// gets the empty message RFC 2920 asks for (a lone "."), whose reply is
// then replies.Data.
func (c *Client) Envelope(from string, opts *MailOptions, rcpts []string) (*DataCommand, EnvelopeReplies, error) {
	var replies EnvelopeReplies
	if err := c.hello(); err != nil {
		return nil, replies, err
	}
	if _, ok := c.ext["PIPELINING"]; !ok || c.lmtp {
		return c.envelopeOneByOne(from, opts, rcpts)
	}
	lines := make([]string, 0, len(rcpts)+2)
	mail, err := c.mailCommand(from, opts)
	if err != nil {
		return nil, replies, err
	}
	lines = append(lines, mail)
	for _, to := range rcpts {
		line, err := c.rcptCommand(to, nil)
		if err != nil {
			return nil, replies, err
		}
		lines = append(lines, line)
	}
	lines = append(lines, "DATA")

	c.conn.SetDeadline(time.Now().Add(c.CommandTimeout))
	defer c.conn.SetDeadline(time.Time{})
	for _, line := range lines {
		c.text.W.WriteString(line)
		c.text.W.WriteString("\r\n")
	}
	if err := c.text.W.Flush(); err != nil {
		return nil, replies, err
	}

	// Every reply is read, whatever came before it, so that the next
	// command reads its own.
	next := func(expect int) error {
		c.conn.SetDeadline(time.Now().Add(c.CommandTimeout))
		_, _, err := c.readResponse(expect)
		return err
	}
	if replies.Mail = next(250); replies.Mail != nil && !isReply(replies.Mail) {
		return nil, replies, replies.Mail
	}
	c.rcpts = nil
	replies.Rcpt = make([]error, len(rcpts))
	accepted := 0
	for i, to := range rcpts {
		if replies.Rcpt[i] = next(25); replies.Rcpt[i] != nil {
			if !isReply(replies.Rcpt[i]) {
				return nil, replies, replies.Rcpt[i]
			}
			continue
		}
		accepted++
		c.rcpts = append(c.rcpts, to)
	}
	if replies.Data = next(354); replies.Data != nil {
		if !isReply(replies.Data) {
			return nil, replies, replies.Data
		}
		return nil, replies, nil
	}
	if accepted == 0 || replies.Mail != nil {
		// DATA accepted with no transaction worth sending: end it with
		// the empty message.
		c.text.W.WriteString(".\r\n")
		if err := c.text.W.Flush(); err != nil {
			return nil, replies, err
		}
		replies.Data = next(250)
		if replies.Data == nil {
			replies.Data = errors.New("smtp: the server accepted DATA with no recipient; an empty message was sent to end it")
		} else if !isReply(replies.Data) {
			return nil, replies, replies.Data
		}
		return nil, replies, nil
	}
	return &DataCommand{client: c, wc: &dotWriter{w: c.text.W}}, replies, nil
}

// envelopeOneByOne is Envelope for a server without PIPELINING.
func (c *Client) envelopeOneByOne(from string, opts *MailOptions, rcpts []string) (*DataCommand, EnvelopeReplies, error) {
	var replies EnvelopeReplies
	if replies.Mail = c.Mail(from, opts); replies.Mail != nil {
		if !isReply(replies.Mail) {
			return nil, replies, replies.Mail
		}
		return nil, replies, nil
	}
	replies.Rcpt = make([]error, len(rcpts))
	accepted := 0
	for i, to := range rcpts {
		if replies.Rcpt[i] = c.Rcpt(to, nil); replies.Rcpt[i] != nil {
			if !isReply(replies.Rcpt[i]) {
				return nil, replies, replies.Rcpt[i]
			}
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return nil, replies, nil
	}
	data, err := c.Data()
	if err != nil {
		if !isReply(err) {
			return nil, replies, err
		}
		replies.Data = err
		return nil, replies, nil
	}
	return data, replies, nil
}

// isReply reports whether err is the server's reply (the connection is
// still in step) rather than a failure to talk to it.
func isReply(err error) bool {
	var se *SMTPError
	return errors.As(err, &se)
}
