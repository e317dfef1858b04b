package capture

import (
	"reflect"
	"strings"
	"testing"
)

// The header fields come in the message's order, under their names as
// written (net/mail would say Message-Id and X-Mailer), repeated fields
// each in its place, folded ones on one line with encoded words decoded.
func TestParseKeepsHeaderOrderAndSpelling(t *testing.T) {
	msg := "Received: from app.example.com by relay.test; Mon, 2 Mar 2026 10:00:00 +0000\r\n" +
		"Received: from localhost\r\n\tby app.example.com\r\n" +
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n  aus Wien\r\n" +
		"From: app@example.com\r\n" +
		"Message-ID: <1@example.com>\r\n" +
		"x-mailer: shop 2.1\r\n" +
		"To: a@example.net,\r\n b@example.net\r\n" +
		"\r\n" +
		"Not-A-Header: body text\r\n"
	want := []Header{
		{"Received", "from app.example.com by relay.test; Mon, 2 Mar 2026 10:00:00 +0000"},
		{"Received", "from localhost by app.example.com"},
		{"Subject", "Grüße aus Wien"},
		{"From", "app@example.com"},
		{"Message-ID", "<1@example.com>"},
		{"x-mailer", "shop 2.1"},
		{"To", "a@example.net, b@example.net"},
	}
	for _, eol := range []string{"\r\n", "\n"} {
		p := Parse([]byte(strings.ReplaceAll(msg, "\r\n", eol)))
		if !reflect.DeepEqual(p.Headers, want) {
			t.Errorf("line ends %q: headers\n%q\nwant\n%q", eol, p.Headers, want)
		}
		if p.Text != "Not-A-Header: body text"+eol {
			t.Errorf("line ends %q: text %q", eol, p.Text)
		}
	}
}

// A message without a body still has its header fields; one whose header
// net/mail refuses is shown whole as text, with no fields.
func TestParseHeaderOnlyAndMalformed(t *testing.T) {
	p := Parse([]byte("Subject: only a header\r\nFrom: a@example.com\r\n"))
	if want := []Header{{"Subject", "only a header"}, {"From", "a@example.com"}}; !reflect.DeepEqual(p.Headers, want) {
		t.Errorf("header only: %q, want %q", p.Headers, want)
	}
	const bad = " starts folded\r\nSubject: x\r\n\r\nbody\r\n"
	if p := Parse([]byte(bad)); p.Headers != nil || p.Text != bad {
		t.Errorf("malformed: headers %q text %q", p.Headers, p.Text)
	}
}

// Parse never fails on odd mail, and each header field it reads is one
// line (a bare CR is kept, as net/mail keeps it) under a name without a
// colon.
func FuzzParse(f *testing.F) {
	f.Add([]byte("Subject: a\r\n b\r\nX-A:\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nhi\n--x--\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		Parse(msg)
		for _, h := range headerFields(msg) {
			if strings.Contains(h.Name, ":") || strings.Contains(h.Name+h.Value, "\n") {
				t.Fatalf("header %q from %q", h, msg)
			}
		}
	})
}
