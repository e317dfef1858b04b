package relay

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// longHTML is one line of about 2,100 bytes, as an application that writes HTML
// without line breaks sends it.
var longHTML = "<p>" + strings.Repeat("Café au lait, ", 140) + "</p>"

// decodedBody reads a queued message back as a receiver would: the body
// of a single-part message, decoded.
func decodedBody(t *testing.T, queued []byte) (mail.Header, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(queued))
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = m.Body
	switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return m.Header, string(b)
}

func longestLine(b []byte) int {
	longest := 0
	for _, line := range bytes.Split(b, []byte("\r\n")) {
		longest = max(longest, len(line))
	}
	return longest
}

// A body line over RFC 5322's 998 octets (well under max_line_length) is
// accepted, and leaves the relay re-encoded: no line over 998 octets, the
// same text once decoded. It used to get 451 4.3.0 and a closed
// connection, for ever.
func TestLongBodyLineAcceptedAndReencoded(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.MaxLineLength = 64 << 10 })
	c := h.login(t, true)
	body := "Hello,\r\n" + longHTML + "\r\nBye.\r\n"
	msg := "From: alice@example.com\r\nSubject: newsletter\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
	if err := send(c, alice, []string{"bob@example.net"}, msg); err != nil {
		t.Fatal(err)
	}
	queued := h.spool.bodies[0]
	if n := longestLine(queued); n > 998 {
		t.Fatalf("a line of %d octets was queued:\n%s", n, queued)
	}
	hdr, got := decodedBody(t, queued)
	if got != body {
		t.Fatalf("decoded body differs:\n got %q\nwant %q", got, body)
	}
	if hdr.Get("Content-Transfer-Encoding") != "quoted-printable" || len(hdr["Content-Transfer-Encoding"]) != 1 || hdr.Get("Mime-Version") != "1.0" {
		t.Fatalf("header after re-encoding: %v", hdr)
	}
}

// A message the client signed leaves exactly as signed, long lines and
// all: re-encoding it would break the signature.
func TestDKIMSignedLongLinesPassUnchanged(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.MaxLineLength = 64 << 10 })
	c := h.login(t, true)
	msg := "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; h=from:subject;\r\n\tb=abc\r\nFrom: alice@example.com\r\nSubject: signed\r\n\r\n" + longHTML + "\r\n"
	if err := send(c, alice, []string{"bob@example.net"}, msg); err != nil {
		t.Fatal(err)
	}
	if queued := h.spool.bodies[0]; !bytes.HasSuffix(queued, []byte(msg)) {
		t.Fatalf("the signed message was changed:\n%s", queued)
	}
}

// A line past max_line_length is refused permanently, naming the limit,
// and the client reads that reply (the rest of its message is read and
// dropped first, so that it is not cut off while still sending). It used
// to get 451 4.3.0 and retry for ever.
func TestLineBeyondMaxLineLengthRefusedPermanently(t *testing.T) {
	h := startRelay(t, func(o *Options) { o.MaxLineLength = 2000 })
	c := h.login(t, true)
	msg := "From: alice@example.com\r\nSubject: x\r\n\r\n" + longHTML + "\r\n" + strings.Repeat("more text after it\r\n", 3000)
	err := send(c, alice, []string{"bob@example.net"}, msg)
	wantCode(t, err, 550, smtp.EnhancedCode{5, 6, 0}, "a line is longer than 2000 bytes")
	if h.spool.count() != 0 {
		t.Fatal("the message was queued")
	}
	// go-smtp cannot read this connection any more: it is closed.
	if err := c.Noop(); err == nil {
		t.Fatal("the session goes on after its input became unreadable")
	}
	if err := send(h.login(t, true), alice, []string{"bob@example.net"}, simpleMessage); err != nil {
		t.Fatalf("a new session: %v", err)
	}
}

func TestRewriteLongLines(t *testing.T) {
	long := strings.Repeat("word ", 250)       // 1,250 octets, ASCII
	cyrillic := strings.Repeat("Привет ", 200) // mostly non-ASCII
	b64 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("binary\x00\xff", 200)))
	qpLong := strings.Repeat("caf=C3=A9 ", 150) + "end"
	mixed := "From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
		"preamble\r\n--outer\r\nContent-Type: text/plain\r\n\r\nshort part, kept as is\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
		"--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + long + "\r\n" +
		"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + cyrillic + "\r\n" +
		"--inner--\r\n" +
		"--outer\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 + "\r\n" +
		"--outer\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n" + qpLong + "\r\n" +
		"--outer--\r\nepilogue\r\n"

	var out heldBuffer
	if err := rewriteMessage(&out, []byte(mixed)); err != nil {
		t.Fatal(err)
	}
	if n := longestLine(out.b); n > 998 {
		t.Fatalf("a line of %d octets is left:\n%s", n, out.b)
	}
	if !bytes.Contains(out.b, []byte("preamble\r\n--outer\r\nContent-Type: text/plain\r\n\r\nshort part, kept as is\r\n--outer\r\n")) ||
		!bytes.HasSuffix(out.b, []byte("\r\n--outer--\r\nepilogue\r\n")) {
		t.Fatalf("what had no long line changed:\n%s", out.b)
	}

	// Every part reads back as it was sent.
	m, err := mail.ReadMessage(bytes.NewReader(out.b))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(r io.Reader, boundary string)
	walk = func(r io.Reader, boundary string) {
		mr := multipart.NewReader(r, boundary)
		for {
			p, err := mr.NextPart() // decodes quoted-printable itself
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mt, params, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if strings.HasPrefix(mt, "multipart/") {
				walk(p, params["boundary"])
				continue
			}
			var r io.Reader = p
			if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
				r = base64.NewDecoder(base64.StdEncoding, p)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(b))
		}
	}
	walk(m.Body, "outer")
	want := []string{"short part, kept as is", long, cyrillic, strings.Repeat("binary\x00\xff", 200), strings.Repeat("café ", 150) + "end"}
	if len(got) != len(want) {
		t.Fatalf("read %d parts back, want %d", len(got), len(want))
	}
	for i := range want {
		if strings.TrimRight(got[i], "\r\n") != want[i] {
			t.Errorf("part %d reads back as\n%q\nwant\n%q", i, got[i], want[i])
		}
	}
	if !bytes.Contains(out.b, []byte("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n")) {
		t.Errorf("the mostly non-ASCII part was not base64-encoded:\n%s", out.b)
	}
	if bytes.Count(out.b, []byte("MIME-Version")) != 1 {
		t.Errorf("MIME-Version added to a message that had one:\n%s", out.b)
	}
}

// A long header line is folded at white space; a message without long
// lines is copied as it is.
func TestRewriteLongLinesFoldsHeaders(t *testing.T) {
	to := "To: " + strings.TrimSuffix(strings.Repeat("someone@example.net, ", 60), ", ")
	msg := "From: a@example.com\r\n" + to + "\r\nSubject: x\r\n\r\nbody\r\n"
	var out heldBuffer
	if err := rewriteMessage(&out, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if n := longestLine(out.b); n > 998 {
		t.Fatalf("a line of %d octets is left:\n%s", n, out.b)
	}
	m, err := mail.ReadMessage(bytes.NewReader(out.b))
	if err != nil {
		t.Fatal(err)
	}
	if list, err := m.Header.AddressList("To"); err != nil || len(list) != 60 {
		t.Fatalf("To reads back as %d addresses (%v)", len(list), err)
	}
	if !bytes.HasSuffix(out.b, []byte("\r\nSubject: x\r\n\r\nbody\r\n")) {
		t.Fatalf("the rest changed:\n%s", out.b)
	}

	short := "From: a@example.com\r\n\r\nshort\r\n"
	out = heldBuffer{}
	if err := rewriteMessage(&out, []byte(short)); err != nil || string(out.b) != short {
		t.Fatalf("got %q, %v", out.b, err)
	}
}

// What cannot be re-encoded without changing the content is refused,
// naming where, with a permanent reply.
func TestLongLinesThatCannotBeReencodedRefused(t *testing.T) {
	long := strings.Repeat("x", 1200)
	for _, tc := range []struct{ name, msg, where string }{
		{"header without white space", "From: a@example.com\r\nX-Token: " + long + "\r\n\r\nbody\r\n", `header field "X-Token"`},
		{"epilogue", "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n" + long + "\r\n", "the text around the MIME parts"},
		{"unknown encoding", "From: a@example.com\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n" + long + "\r\n", `Content-Transfer-Encoding "x-uuencode"`},
	} {
		var out heldBuffer
		err := rewriteMessage(&out, []byte(tc.msg))
		var ne *notEncodableError
		if !errors.As(err, &ne) || !strings.Contains(ne.where, tc.where) {
			t.Errorf("%s: got %v, want a refusal naming %q", tc.name, err, tc.where)
		}
	}

	h := startRelay(t, func(o *Options) { o.MaxLineLength = 64 << 10 })
	c := h.login(t, true)
	err := send(c, alice, []string{"bob@example.net"}, "From: alice@example.com\r\nX-Token: "+long+"\r\n\r\nbody\r\n")
	wantCode(t, err, 550, smtp.EnhancedCode{5, 6, 0}, `a line in the header field "X-Token" (no white space to fold it at) is longer than 998 octets`)
}

// rewriteMessage is rewriteLongLines on a whole message, with no other
// change to its header. Only the header fields are read first (not the
// From addresses), so that any message whose header parses is rewritten.
func rewriteMessage(w io.Writer, msg []byte) error {
	block, _ := splitHeader(msg)
	h, bad := parseHeader(block)
	if bad != nil {
		return errors.New(bad.String())
	}
	return rewriteLongLines(w, &parsedMessage{msg: msg, block: block, header: h}, headerChanges{})
}
