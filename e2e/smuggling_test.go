package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// rawSession speaks SMTP byte for byte to the relay's implicit-TLS
// listener, to send what no well-behaved client library would.
type rawSession struct {
	t  *testing.T
	c  *tls.Conn
	br *bufio.Reader
}

func rawLogin(t *testing.T, r *relay, user, password string) *rawSession {
	t.Helper()
	c, err := tls.Dial("tcp", r.ImplicitAddr, r.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &rawSession{t: t, c: c, br: bufio.NewReader(c)}
	s.expect("220")
	s.cmd("EHLO smuggler.test", "250")
	s.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)), "235")
	return s
}

func (s *rawSession) send(data string) {
	s.t.Helper()
	if _, err := s.c.Write([]byte(data)); err != nil {
		s.t.Fatal(err)
	}
}

// expect reads one reply and checks its code; it returns the last line.
func (s *rawSession) expect(code string) string {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("reading reply: %v", err)
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		if !strings.HasPrefix(line, code) {
			s.t.Fatalf("got %q, want %s", line, code)
		}
		return line
	}
}

func (s *rawSession) cmd(line, code string) string {
	s.t.Helper()
	s.send(line + "\r\n")
	return s.expect(code)
}

// Every end-of-data and line-ending variant of the December 2023 SMTP
// smuggling advisories goes through the whole relay, by DATA and by BDAT:
// exactly one message reaches the upstream each time, its body is what the
// client sent with bare line endings made CRLF, and the smuggled
// transaction never arrives.
func TestSmugglingDifferential(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.start()
	r.addUser("app@example.com", "app password 1")

	smuggled := "MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nFrom: ceo@bank.example\r\nSubject: SMUGGLED\r\n\r\nwire the money\r\n"
	variants := []string{"\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\n", "\r\n.\r", "\r.\n", "\n.\r", "\r\n\x00.\r\n"}
	for i, v := range variants {
		for _, bdat := range []bool{false, true} {
			s := rawLogin(t, r, "app@example.com", "app password 1")
			s.cmd("MAIL FROM:<app@example.com>", "250")
			s.cmd("RCPT TO:<bob@example.net>", "250")
			body := fmt.Sprintf("From: app@example.com\r\nSubject: variant %d bdat=%v\r\n\r\nfirst part", i, bdat) + v + smuggled
			if bdat {
				s.send(fmt.Sprintf("BDAT %d LAST\r\n", len(body)) + body)
			} else {
				s.send("DATA\r\n")
				s.expect("354")
				s.send(body + "\r\n.\r\n")
			}
			s.expect("250")
			s.cmd("QUIT", "221")
		}
	}
	want := 2 * len(variants)
	msgs := up.Wait(t, want, 20*time.Second)
	time.Sleep(500 * time.Millisecond) // anything smuggled would arrive right behind
	msgs = up.Messages()
	if len(msgs) != want {
		t.Fatalf("upstream got %d messages, want exactly %d", len(msgs), want)
	}
	for _, m := range msgs {
		if m.From != "app@example.com" || len(m.To) != 1 || m.To[0] != "bob@example.net" {
			t.Errorf("smuggled envelope reached the upstream: from %s to %v", m.From, m.To)
		}
		data := string(m.Data)
		if !strings.Contains(data, "first part") || !strings.Contains(data, "wire the money") {
			t.Errorf("message body lost its content:\n%q", data)
		}
		for j := 0; j < len(data); j++ {
			if (data[j] == '\n' && (j == 0 || data[j-1] != '\r')) || (data[j] == '\r' && (j+1 == len(data) || data[j+1] != '\n')) {
				t.Errorf("bare line ending reached the upstream at %d:\n%q", j, data)
				break
			}
		}
	}
}
