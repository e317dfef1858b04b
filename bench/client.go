package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// client is a minimal SMTP submission client: STARTTLS, AUTH PLAIN, then
// MAIL/RCPT/DATA transactions with RSET between them. It is written out
// here rather than taken from go-smtp because go-smtp's Client.Reset makes
// the next Mail send EHLO again, an extra round trip per message that a
// reusing client does not pay.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

const ioTimeout = 60 * time.Second

// dialSubmission connects to addr, upgrades with STARTTLS (verifying the
// certificate with tlsConfig) and, when user is not empty, logs in with
// AUTH PLAIN.
func dialSubmission(addr string, tlsConfig *tls.Config, user, password string) (*client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	fail := func(err error) (*client, error) { conn.Close(); return nil, err }
	if _, err := c.reply(220); err != nil {
		return fail(fmt.Errorf("greeting: %w", err))
	}
	if _, err := c.cmd(250, "EHLO bench.localhost"); err != nil {
		return fail(err)
	}
	if _, err := c.cmd(220, "STARTTLS"); err != nil {
		return fail(err)
	}
	tc := tls.Client(conn, tlsConfig)
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		return fail(fmt.Errorf("TLS handshake: %w", err))
	}
	c.conn, c.r, c.w = tc, bufio.NewReader(tc), bufio.NewWriterSize(tc, 64<<10)
	if _, err := c.cmd(250, "EHLO bench.localhost"); err != nil {
		return fail(err)
	}
	if user != "" {
		token := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
		if _, err := c.cmd(235, "AUTH PLAIN %s", token); err != nil {
			return fail(fmt.Errorf("AUTH: %w", err))
		}
	}
	return c, nil
}

// send runs one transaction: MAIL, RCPT, DATA, the header and body, ".".
// body must be CRLF text with no line starting with ".".
func (c *client) send(from, to string, header, body []byte) error {
	if _, err := c.cmd(250, "MAIL FROM:<%s> SIZE=%d", from, len(header)+len(body)); err != nil {
		return err
	}
	if _, err := c.cmd(250, "RCPT TO:<%s>", to); err != nil {
		return err
	}
	if _, err := c.cmd(354, "DATA"); err != nil {
		return err
	}
	c.w.Write(header)
	c.w.Write(body)
	c.w.WriteString(".\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	_, err := c.reply(250)
	return err
}

func (c *client) rset() error {
	_, err := c.cmd(250, "RSET")
	return err
}

func (c *client) quit() {
	c.cmd(221, "QUIT")
	c.conn.Close()
}

func (c *client) cmd(want int, format string, args ...any) (string, error) {
	c.conn.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(c.w, format, args...)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	return c.reply(want)
}

// reply reads a possibly multi-line reply and checks its code.
func (c *client) reply(want int) (string, error) {
	c.conn.SetDeadline(time.Now().Add(ioTimeout))
	var text strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return text.String(), err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			return line, fmt.Errorf("short reply %q", line)
		}
		text.WriteString(line)
		text.WriteByte('\n')
		if line[3] == ' ' {
			var code int
			fmt.Sscanf(line[:3], "%d", &code)
			if code != want {
				return text.String(), fmt.Errorf("want %d, got %q", want, strings.TrimSpace(text.String()))
			}
			return text.String(), nil
		}
	}
}
