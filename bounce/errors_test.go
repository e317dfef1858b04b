package bounce_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	netsmtp "net/smtp"
	"net/textproto"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/bounce"
)

// fakeSmarthost serves one scripted SMTP session on a loopback port and
// returns its address. replies maps a command verb (EHLO, MAIL, RCPT, DATA,
// and "." for the end of the message data) to the raw reply to send; verbs
// not in the map get "250 2.0.0 OK". An empty reply hangs up instead.
func fakeSmarthost(t *testing.T, replies map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		reply := func(verb string) bool {
			rep, ok := replies[verb]
			if !ok {
				rep = "250 2.0.0 OK\r\n"
			}
			if rep == "" {
				return false
			}
			_, err := io.WriteString(c, rep)
			return err == nil
		}
		io.WriteString(c, "220 fake.example ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			verb := strings.ToUpper(fields[0])
			if !reply(verb) {
				return
			}
			if verb == "DATA" && strings.HasPrefix(replies["DATA"], "354") {
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
				}
				if !reply(".") {
					return
				}
			}
		}
	}()
	return l.Addr().String()
}

func TestGmailMultiLineReplyOverTheWireIsUnknownUser(t *testing.T) {
	addr := fakeSmarthost(t, map[string]string{"RCPT": "" +
		"550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n" +
		"550-5.1.1 double-checking the recipient's email address for typos or\r\n" +
		"550-5.1.1 unnecessary spaces. For more information, go to\r\n" +
		"550 5.1.1  https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-5e4e0a1a2b3si123456a12.1 - gsmtp\r\n"})
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("nobody@gmail.com", nil)
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) {
		t.Fatalf("Rcpt: %v, want an *smtp.SMTPError", err)
	}
	v := bounce.ClassifyError(fmt.Errorf("delivering to nobody@gmail.com: %w", err))
	want(t, v, bounce.Permanent, bounce.UnknownUser)
	if v.Status != "5.1.1" {
		t.Errorf("status %q, want 5.1.1", v.Status)
	}
}

// fullMailboxSession is a go-smtp upstream whose every recipient is over
// quota, as Gmail says it with the permanent code.
type fullMailboxSession struct{}

func (fullMailboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (fullMailboxSession) Rcpt(string, *smtp.RcptOptions) error {
	return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2},
		Message: "The email account that you tried to reach is over quota."}
}
func (fullMailboxSession) Data(io.Reader) error { return nil }
func (fullMailboxSession) Reset()               {}
func (fullMailboxSession) Logout() error        { return nil }

func TestGoSMTPUpstreamRejectingA5xxFullMailboxIsTemporary(t *testing.T) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return fullMailboxSession{}, nil }))
	srv.Domain = "upstream.example"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	c, err := smtp.Dial(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	v := bounce.ClassifyError(c.Rcpt("carol@example.net", nil))
	want(t, v, bounce.Temporary, bounce.MailboxFull)
	if v.Status != "4.2.2" {
		t.Errorf("status %q, want 4.2.2", v.Status)
	}
}

func TestTextprotoErrorFromNetSMTPIsClassifiedByItsReply(t *testing.T) {
	addr := fakeSmarthost(t, map[string]string{"RCPT": "452-4.2.2 The email account that you tried to reach is over quota. Please direct\r\n452 4.2.2 the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp\r\n"})
	c, err := netsmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("alice@example.com"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("carol@gmail.com")
	var protoErr *textproto.Error
	if !errors.As(err, &protoErr) {
		t.Fatalf("Rcpt: %v, want a *textproto.Error", err)
	}
	want(t, bounce.ClassifyError(err), bounce.Temporary, bounce.MailboxFull)
}

// hangUpAfterTheMessage sends a message to an upstream that takes all of
// it and hangs up without replying to the final dot, and returns the
// error go-smtp's client reports.
func hangUpAfterTheMessage(t *testing.T) error {
	t.Helper()
	addr := fakeSmarthost(t, map[string]string{"DATA": "354 Go ahead\r\n", ".": ""})
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: hi\r\n\r\nhello\r\n")
	err = w.Close()
	if err == nil {
		t.Fatal("the upstream hung up, but Close reported success")
	}
	return err
}

func TestConnectionDroppedMidDataIsTemporaryNetwork(t *testing.T) {
	want(t, bounce.ClassifyError(hangUpAfterTheMessage(t)), bounce.Temporary, bounce.Network)
}

func TestConnectionRefusedIsTemporaryNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		t.Skip("something else took the port")
	}
	v := bounce.ClassifyError(fmt.Errorf("dialing smarthost: %w", err))
	want(t, v, bounce.Temporary, bounce.Network)
	if !strings.Contains(v.Explanation, "refused") || v.Status != "4.4.1" {
		t.Errorf("got %q (%s)", v.Explanation, v.Status)
	}
}

func TestConnectionResetIsTemporaryNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.(*net.TCPConn).SetLinger(0) // close with a RST
		c.Close()
	}()
	// Depending on timing the reset reaches the dial or the first read.
	c, err := net.Dial("tcp", l.Addr().String())
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatal("read succeeded on a reset connection")
	}
	want(t, bounce.ClassifyError(err), bounce.Temporary, bounce.Network)
}

func TestReadTimeoutIsTemporaryNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(time.Second) // never greet
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	v := bounce.ClassifyError(err)
	want(t, v, bounce.Temporary, bounce.Network)
	if !strings.Contains(v.Explanation, "timed out") {
		t.Errorf("explanation %q", v.Explanation)
	}
}

func TestContextDeadlineIsTemporaryNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	want(t, bounce.ClassifyError(fmt.Errorf("sending: %w", ctx.Err())), bounce.Temporary, bounce.Network)
}

func TestCancelledAttemptIsTemporary(t *testing.T) {
	v := bounce.ClassifyError(fmt.Errorf("sending: %w", context.Canceled))
	if v.Class != bounce.Temporary {
		t.Errorf("got %s %s", v.Class, v.Category)
	}
}

func TestUnresolvableSmarthostIsTemporaryNetwork(t *testing.T) {
	// We only dial the configured smarthost: its name failing to resolve
	// is for the operator to fix, not a reason to bounce.
	err := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{
		Err: "no such host", Name: "smtp.example.invalid", IsNotFound: true,
	}}
	v := bounce.ClassifyError(err)
	want(t, v, bounce.Temporary, bounce.Network)
	if v.Status != "4.4.3" {
		t.Errorf("status %q, want 4.4.3", v.Status)
	}
}

// tlsServer starts an HTTPS test server, whose certificate no system trusts,
// and returns its address and certificate.
func tlsServer(t *testing.T, config *tls.Config) (string, *x509.Certificate) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are the point
	srv.TLS = config
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), srv.Certificate()
}

func TestUnknownCertificateAuthorityIsTemporaryTLS(t *testing.T) {
	addr, _ := tlsServer(t, nil)
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "example.com", RootCAs: x509.NewCertPool()})
	if err == nil {
		t.Fatal("handshake with an untrusted certificate succeeded")
	}
	v := bounce.ClassifyError(fmt.Errorf("starttls: %w", err))
	want(t, v, bounce.Temporary, bounce.TLS)
	if !strings.Contains(v.Explanation, "unknown authority") || v.Status != "4.7.5" {
		t.Errorf("got %q (%s)", v.Explanation, v.Status)
	}
}

func TestCertificateForAnotherHostIsTemporaryTLS(t *testing.T) {
	addr, cert := tlsServer(t, nil)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "smtp.example.net", RootCAs: roots})
	v := bounce.ClassifyError(err)
	want(t, v, bounce.Temporary, bounce.TLS)
	if !strings.Contains(v.Explanation, "host name") {
		t.Errorf("explanation %q", v.Explanation)
	}
}

func TestExpiredCertificateIsTemporaryTLS(t *testing.T) {
	addr, cert := tlsServer(t, nil)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	future := func() time.Time { return cert.NotAfter.Add(24 * time.Hour) }
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "example.com", RootCAs: roots, Time: future})
	v := bounce.ClassifyError(err)
	want(t, v, bounce.Temporary, bounce.TLS)
	if !strings.Contains(v.Explanation, "expired") {
		t.Errorf("explanation %q", v.Explanation)
	}
}

func TestPlaintextServerOnATLSPortIsTemporaryTLS(t *testing.T) {
	// The classic misconfiguration: implicit TLS against a STARTTLS port.
	addr := fakeSmarthost(t, nil)
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "example.com"})
	var recordErr tls.RecordHeaderError
	if !errors.As(err, &recordErr) {
		t.Fatalf("got %v, want a tls.RecordHeaderError", err)
	}
	v := bounce.ClassifyError(err)
	want(t, v, bounce.Temporary, bounce.TLS)
	if !strings.Contains(v.Explanation, "TLS mode") {
		t.Errorf("explanation %q", v.Explanation)
	}
}

func TestTLSAlertFromTheUpstreamIsTemporaryTLS(t *testing.T) {
	addr, cert := tlsServer(t, &tls.Config{MinVersion: tls.VersionTLS13})
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	_, err := tls.Dial("tcp", addr,
		&tls.Config{ServerName: "example.com", RootCAs: roots, MaxVersion: tls.VersionTLS12})
	if err == nil {
		t.Fatal("a TLS 1.2 client talked to a TLS 1.3-only server")
	}
	v := bounce.ClassifyError(err)
	want(t, v, bounce.Temporary, bounce.TLS)
	if !strings.Contains(v.Explanation, "aborted the TLS handshake") {
		t.Errorf("%v explained %q", err, v.Explanation)
	}
}

func TestUnknownErrorIsTemporaryOther(t *testing.T) {
	want(t, bounce.ClassifyError(errors.New("queue: lease lost")), bounce.Temporary, bounce.Other)
}

func TestUnknownErrorsTextNeverMakesItPermanent(t *testing.T) {
	// Someone flattened a reply into a string: without the type we cannot
	// trust it enough to bounce.
	want(t, bounce.ClassifyError(errors.New("550 5.1.1 user unknown")), bounce.Temporary, bounce.Other)
	// But a recognisable temporary text may make the category sharper.
	want(t, bounce.ClassifyError(errors.New("proxy: dial tcp 192.0.2.1:25: connection refused")), bounce.Temporary, bounce.Network)
}

func TestNilErrorIsTheZeroVerdict(t *testing.T) {
	if v := bounce.ClassifyError(nil); v != (bounce.Verdict{}) {
		t.Errorf("ClassifyError(nil) = %+v", v)
	}
}

func TestSMTPErrorWithoutEnhancedCodeUsesTheText(t *testing.T) {
	for _, code := range []smtp.EnhancedCode{smtp.EnhancedCodeNotSet, smtp.NoEnhancedCode} {
		err := &smtp.SMTPError{Code: 550, EnhancedCode: code, Message: "5.1.1 <bob@example.org>: Recipient address rejected"}
		want(t, bounce.ClassifyError(err), bounce.Permanent, bounce.UnknownUser)
	}
}

// Judge: the rules that depend on how far the attempt had got.

// wantUpstream checks what a verdict tells the sender about the upstream
// and the message.
func wantUpstream(t *testing.T, v bounce.Verdict, upstreamWide, mayFailOver bool) {
	t.Helper()
	if v.UpstreamWide != upstreamWide || v.MayFailOver != mayFailOver {
		t.Errorf("%+v: want UpstreamWide %v, MayFailOver %v", v, upstreamWide, mayFailOver)
	}
}

func TestSetupRefusalIsNeverPermanent(t *testing.T) {
	refusal := "550 5.7.1 Client host rejected: cannot find your hostname\r\n"
	addr := fakeSmarthost(t, map[string]string{"EHLO": refusal, "HELO": refusal})
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Hello("relay.example.com")
	if err == nil {
		t.Fatal("EHLO was accepted")
	}
	// The same reply to MAIL or RCPT is final...
	want(t, bounce.Judge(err, bounce.Transaction), bounce.Permanent, bounce.Policy)
	// ...but while setting up the session it says nothing about the
	// message: the upstream dislikes us, which the operator fixes.
	v := bounce.Judge(err, bounce.Setup)
	want(t, v, bounce.Temporary, bounce.Policy)
	if v.Status != "4.7.1" {
		t.Errorf("status %q, want 4.7.1", v.Status)
	}
	if !strings.HasSuffix(v.Explanation, "; will retry") {
		t.Errorf("explanation %q does not say it will retry", v.Explanation)
	}
	wantUpstream(t, v, true, true)
}

func TestEverySetupFailureBacksOffTheUpstreamAndMayFailOver(t *testing.T) {
	for _, err := range []error{
		&smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Username and Password not accepted."},
		&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available, closing channel"},
		&textproto.Error{Code: 454, Msg: "TLS not available due to temporary reason"},
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		x509.UnknownAuthorityError{},
		errors.New("upstream does not offer STARTTLS"),
	} {
		v := bounce.Judge(fmt.Errorf("connecting: %w", err), bounce.Setup)
		if v.Class != bounce.Temporary {
			t.Errorf("%v at setup: %s", err, v.Class)
		}
		wantUpstream(t, v, true, true)
	}
}

func TestTransactionFailures(t *testing.T) {
	for _, c := range []struct {
		name                      string
		err                       error
		class                     bounce.Class
		upstreamWide, mayFailOver bool
	}{
		// A 421 closes the session: the upstream, not this message.
		{"421 to MAIL", &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Try again later, closing connection"}, bounce.Temporary, true, true},
		// Even when its words make it final for the message.
		{"421 too big", &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 4}, Message: "Message too big for system"}, bounce.Permanent, true, false},
		{"rate limited", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 4, 5}, Message: "Daily user sending quota exceeded"}, bounce.Temporary, true, true},
		{"connection lost", fmt.Errorf("rcpt: %w", io.ErrUnexpectedEOF), bounce.Temporary, true, true},
		// The upstream is fine; it refused this message for now.
		{"451 to DATA", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, please try again"}, bounce.Temporary, false, true},
		{"greylisted", &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "Recipient address rejected: Greylisted"}, bounce.Temporary, false, true},
		// Final wherever the message goes.
		{"relay denied", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}, bounce.Permanent, false, false},
		{"unknown user", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}, bounce.Permanent, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := bounce.Judge(c.err, bounce.Transaction)
			if v.Class != c.class {
				t.Errorf("class %s, want %s", v.Class, c.class)
			}
			wantUpstream(t, v, c.upstreamWide, c.mayFailOver)
		})
	}
}

func TestLostReplyToTheMessageNeverFailsOver(t *testing.T) {
	// The upstream took the whole message and hung up without a reply: it
	// may have queued the message, so sending it elsewhere could deliver
	// it twice.
	err := hangUpAfterTheMessage(t)
	v := bounce.Judge(err, bounce.EndOfData)
	want(t, v, bounce.Temporary, bounce.Network)
	wantUpstream(t, v, true, false)
	// Before the end of the message the upstream cannot have it.
	wantUpstream(t, bounce.Judge(err, bounce.Transaction), true, true)
}

func TestRefusedMessageMayFailOver(t *testing.T) {
	// A reply to the message is a refusal: the upstream does not have it.
	err := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, please try again"}
	wantUpstream(t, bounce.Judge(err, bounce.EndOfData), false, true)
	err = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message content rejected"}
	wantUpstream(t, bounce.Judge(err, bounce.EndOfData), false, false)
}

func TestJudgeNilIsTheZeroVerdict(t *testing.T) {
	for _, phase := range []bounce.Phase{bounce.Setup, bounce.Transaction, bounce.EndOfData} {
		if v := bounce.Judge(nil, phase); v != (bounce.Verdict{}) {
			t.Errorf("Judge(nil, %d) = %+v", phase, v)
		}
	}
}

func TestClassifyKnowsNoPhase(t *testing.T) {
	// Without a phase there is no telling what the upstream did: the
	// fields that depend on it stay false rather than guess.
	err := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Try again later, closing connection"}
	wantUpstream(t, bounce.ClassifyError(err), false, false)
	wantUpstream(t, bounce.Classify(421, "4.7.0", "Try again later, closing connection"), false, false)
}
