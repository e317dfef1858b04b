package smtp

// Tests of Envelope (outbound's patch, see README.outbound.md).

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scriptedServer answers a client over a pipe: greeting, EHLO with caps,
// then for each batch it reads the given number of lines (all of them
// before answering, which only a pipelining client survives) and writes
// the replies. What the client sent is returned on got once done.
func scriptedServer(t *testing.T, caps []string, batches []batch) (*Client, <-chan []string) {
	t.Helper()
	cli, srv := net.Pipe()
	got := make(chan []string, 1)
	go func() {
		defer srv.Close()
		var lines []string
		defer func() { got <- lines }()
		r := bufio.NewReader(srv)
		io.WriteString(srv, "220 test ESMTP\r\n")
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
		ehlo := "250-test\r\n"
		for _, c := range caps {
			ehlo += "250-" + c + "\r\n"
		}
		io.WriteString(srv, ehlo+"250 8BITMIME\r\n")
		for _, b := range batches {
			for i := 0; i < b.read; i++ {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				lines = append(lines, strings.TrimRight(line, "\r\n"))
			}
			io.WriteString(srv, strings.Join(b.replies, ""))
		}
		// Whatever follows (the message, QUIT) is read and recorded.
		for {
			srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			lines = append(lines, strings.TrimRight(line, "\r\n"))
		}
	}()
	c := NewClient(cli)
	c.CommandTimeout = 5 * time.Second
	t.Cleanup(func() { c.Close() })
	return c, got
}

type batch struct {
	read    int
	replies []string
}

func TestEnvelopePipelinesMailRcptAndData(t *testing.T) {
	c, got := scriptedServer(t, []string{"PIPELINING"}, []batch{
		{read: 4, replies: []string{"250 2.1.0 ok\r\n", "250 2.1.5 ok\r\n", "550 5.1.1 no such user\r\n", "354 go on\r\n"}},
		{read: 2, replies: []string{"250 2.0.0 queued as X\r\n"}},
	})
	data, replies, err := c.Envelope("a@example.com", nil, []string{"b@example.net", "nobody@example.net"})
	if err != nil || data == nil {
		t.Fatalf("Envelope: %v, data %v", err, data)
	}
	var se *SMTPError
	if replies.Mail != nil || replies.Rcpt[0] != nil || !errors.As(replies.Rcpt[1], &se) || se.Code != 550 || replies.Data != nil {
		t.Fatalf("replies %+v", replies)
	}
	io.WriteString(data, "Subject: x\r\n")
	if resp, err := data.CloseWithResponse(); err != nil || resp.StatusText != "2.0.0 queued as X" && resp.StatusText != "queued as X" {
		t.Fatalf("close: %v %+v", err, resp)
	}
	c.Close()
	lines := <-got
	want := []string{"EHLO localhost", "MAIL FROM:<a@example.com> BODY=8BITMIME", "RCPT TO:<b@example.net>", "RCPT TO:<nobody@example.net>", "DATA", "Subject: x", "."}
	if strings.Join(lines[:len(want)], "|") != strings.Join(want, "|") {
		t.Fatalf("server read %q, want %q", lines, want)
	}
}

// Without PIPELINING the server answers each command before the next is
// sent; Envelope waits for each reply.
func TestEnvelopeOneByOneWithoutPipelining(t *testing.T) {
	c, got := scriptedServer(t, nil, []batch{
		{read: 1, replies: []string{"250 ok\r\n"}},
		{read: 1, replies: []string{"250 ok\r\n"}},
		{read: 1, replies: []string{"354 go on\r\n"}},
		{read: 2, replies: []string{"250 done\r\n"}},
	})
	data, replies, err := c.Envelope("a@example.com", &MailOptions{Size: 10}, []string{"b@example.net"})
	if err != nil || data == nil || replies.Mail != nil || replies.Rcpt[0] != nil {
		t.Fatalf("Envelope: %v, %+v", err, replies)
	}
	io.WriteString(data, ".dot\r\n")
	if err := data.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	lines := <-got
	if lines[4] != "..dot" || lines[5] != "." {
		t.Fatalf("server read %q", lines)
	}
}

// A refused MAIL in a pipeline: the RCPTs and DATA get the server's "no
// MAIL" replies, which are read, and the connection stays in step.
func TestEnvelopeMailRefusedKeepsTheConnectionInStep(t *testing.T) {
	c, _ := scriptedServer(t, []string{"PIPELINING"}, []batch{
		{read: 3, replies: []string{"550 5.7.1 sender refused\r\n", "503 5.5.1 MAIL first\r\n", "503 5.5.1 MAIL first\r\n"}},
		{read: 1, replies: []string{"250 2.0.0 ok\r\n"}},
	})
	data, replies, err := c.Envelope("a@example.com", nil, []string{"b@example.net"})
	var se *SMTPError
	if err != nil || data != nil || !errors.As(replies.Mail, &se) || se.Code != 550 {
		t.Fatalf("Envelope: %v, data %v, replies %+v", err, data, replies)
	}
	if err := c.Noop(); err != nil {
		t.Fatalf("the next command read a stale reply: %v", err)
	}
}

// A server that says 354 although every recipient was refused gets the
// empty message, and no DataCommand is returned.
func TestEnvelopeDataWithoutRecipientsSendsTheEmptyMessage(t *testing.T) {
	c, got := scriptedServer(t, []string{"PIPELINING"}, []batch{
		{read: 3, replies: []string{"250 ok\r\n", "550 no\r\n", "354 go on\r\n"}},
		{read: 1, replies: []string{"554 no valid recipients\r\n"}},
	})
	data, replies, err := c.Envelope("a@example.com", nil, []string{"b@example.net"})
	if err != nil || data != nil || replies.Data == nil {
		t.Fatalf("Envelope: %v, data %v, replies %+v", err, data, replies)
	}
	c.Close()
	if lines := <-got; lines[len(lines)-1] != "." && lines[len(lines)-2] != "." {
		t.Fatalf("server read %q, want a lone dot after DATA", lines)
	}
}

// Envelope against go-smtp's own server: the message arrives once, for the
// accepted recipients only.
func TestEnvelopeAgainstServer(t *testing.T) {
	be := &envelopeBackend{}
	s := NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Close()
	c, err := Dial(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		data, replies, err := c.Envelope("a@example.com", nil, []string{"b@example.net", "refuse@example.net", "c@example.net"})
		if err != nil || data == nil || replies.Rcpt[1] == nil {
			t.Fatalf("Envelope %d: %v, %+v", i, err, replies)
		}
		io.WriteString(data, "Subject: x\r\n\r\n.line\r\n")
		if err := data.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(be.got) != 3 || be.got[2] != "b@example.net,c@example.net|Subject: x\r\n\r\n.line\r\n" {
		t.Fatalf("server got %q", be.got)
	}
}

type envelopeBackend struct{ got []string }

func (b *envelopeBackend) NewSession(*Conn) (Session, error) { return &envelopeSession{b: b}, nil }

type envelopeSession struct {
	b     *envelopeBackend
	rcpts []string
}

func (s *envelopeSession) AuthMechanisms() []string                  { return nil }
func (s *envelopeSession) Mail(from string, opts *MailOptions) error { return nil }
func (s *envelopeSession) Reset()                                    { s.rcpts = nil }
func (s *envelopeSession) Logout() error                             { return nil }
func (s *envelopeSession) Rcpt(to string, opts *RcptOptions) error {
	if strings.HasPrefix(to, "refuse") {
		return &SMTPError{Code: 550, EnhancedCode: EnhancedCode{5, 1, 1}, Message: "no"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *envelopeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.b.got = append(s.b.got, strings.Join(s.rcpts, ",")+"|"+string(b))
	return err
}
