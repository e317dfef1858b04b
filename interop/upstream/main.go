// Command upstream is the interop suite's smarthost: a go-smtp server on
// loopback that accepts every message without AUTH or TLS and writes it,
// byte for byte as received, to DIR/RCPT.eml (RCPT being the first
// envelope recipient), so that interop/check.py can compare what arrived
// with what each client was told to send.
//
//	go run ./interop/upstream -listen 127.0.0.1:0 -dir DIR -addr-file FILE
//
// The address it listens on is written to -addr-file once it accepts
// connections. It stops on SIGINT or SIGTERM.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/emersion/go-smtp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
	dir := flag.String("dir", "", "directory to write received messages to")
	addrFile := flag.String("addr-file", "", "file to write the listening address to")
	flag.Parse()
	if *dir == "" {
		log.Fatal("upstream: -dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	host, _, err := net.SplitHostPort(*listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Fatalf("upstream: -listen must be a loopback host:port, got %q", *listen)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := smtp.NewServer(&backend{dir: *dir})
	srv.Domain = "upstream.interop.test"
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.MaxMessageBytes = 64 << 20
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatal(err)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
}

type backend struct {
	dir string
	mu  sync.Mutex // serializes choosing a file name
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct {
	b     *backend
	rcpts []string
}

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(s.rcpts) == 0 {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no recipients"}
	}
	return s.b.save(s.rcpts[0], data)
}

// save writes data to DIR/RCPT.eml, or DIR/RCPT.N.eml when that exists
// (the checker counts those as duplicate deliveries).
func (b *backend) save(rcpt string, data []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := fileName(rcpt)
	path := filepath.Join(b.dir, name+".eml")
	for n := 2; ; n++ {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		path = filepath.Join(b.dir, fmt.Sprintf("%s.%d.eml", name, n))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fileName keeps the characters of an address that are safe in a file name.
func fileName(addr string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '@', r == '.', r == '-', r == '_', r == '+':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, addr)
}

func (s *session) Reset()        { s.rcpts = nil }
func (s *session) Logout() error { return nil }
