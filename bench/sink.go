package main

import (
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the upstream the relay delivers to: a plain go-smtp server on
// loopback that reads every DATA body to the end, throws it away and
// counts the message.
type sink struct {
	srv       *smtp.Server
	ln        net.Listener
	delivered atomic.Int64
	// last is when the latest message was counted (UnixNano).
	last atomic.Int64
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln}
	srv := smtp.NewServer(sinkBackend{s})
	srv.Domain = "sink.bench.test"
	srv.MaxMessageBytes = 64 << 20
	srv.MaxRecipients = 1000
	srv.AllowInsecureAuth = true
	s.srv = srv
	go srv.Serve(ln)
	return s, nil
}

func (s *sink) Addr() string { return s.ln.Addr().String() }

func (s *sink) Close() error { return s.srv.Close() }

type sinkBackend struct{ s *sink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{b.s}, nil }

type sinkSession struct{ s *sink }

func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }

func (ss sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	ss.s.last.Store(time.Now().UnixNano())
	ss.s.delivered.Add(1)
	return nil
}
