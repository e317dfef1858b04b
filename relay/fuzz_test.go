package relay

import (
	"bufio"
	"bytes"
	"errors"
	"net/textproto"
	"strings"
	"testing"

	"outbound/auth"
)

// FuzzMessageHandling runs the relay's message handling on arbitrary DATA:
// after normalization no bare CR or LF is left, normalizing twice changes
// nothing, header parsing never panics, a header the relay accepts hides
// no field from it that net/textproto (a receiver) would see, long lines
// are re-encoded or refused, and the user's sender settings (display name,
// Reply-To) change only what they may.
func FuzzMessageHandling(f *testing.F) {
	f.Add([]byte("From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\n\nfirst\n.\nMAIL FROM:<x@y>\r\n"))
	f.Add([]byte("From: a@b\r\r\n\r\n\r.\r\n"))
	f.Add([]byte("no header at all"))
	// Field names: white space before the colon (obsolete syntax that
	// receivers read as the field), characters RFC 5322 does not allow, a
	// first line that is a continuation, and case.
	f.Add([]byte("From : CEO <ceo@victim.example>\r\nFrom: app@example.com\r\n\r\nx\r\n"))
	f.Add([]byte("DKIM-Signature\t: v=1\r\nReply-To : a@b\r\nFrom: a@example.com\r\n\r\n"))
	f.Add([]byte(" From: a@example.com\r\nSubject: x\r\n\r\n"))
	f.Add([]byte("Fr\x00om: a@example.com\r\nFröm: b@example.com\r\n: c\r\nFROM: a@example.com\r\n\r\n"))
	f.Add([]byte("sender: x@example.net\r\nresent-from: y@example.net\r\nfrom: a@example.com\r\n\r\n"))
	// Long lines, in a plain body and in MIME parts.
	f.Add([]byte("From: a@example.com\r\n\r\n" + strings.Repeat("x=\xc3\xa9 ", 300) + "\r\n"))
	f.Add([]byte("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Repeat("QUJD", 300) + "\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + strings.Repeat("=C3=A9", 200) + "\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		norm, _ := normalizeLineEndings(data)
		for i := 0; i < len(norm); i++ {
			if norm[i] == '\n' && (i == 0 || norm[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, norm)
			}
			if norm[i] == '\r' && (i+1 == len(norm) || norm[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, norm)
			}
		}
		if again, bare := normalizeLineEndings(norm); bare || !bytes.Equal(again, norm) {
			t.Fatalf("normalizing twice changed %q", norm)
		}
		header, _ := splitHeader(norm)
		h, err := parseHeader(header)
		if err != nil {
			return
		}
		for _, f := range h {
			if !bytes.HasPrefix(header[f.start:f.end], []byte(f.name+":")) {
				t.Fatalf("field %q has the span %q", f.name, header[f.start:f.end])
			}
		}
		// Whatever net/textproto reads, the relay reads the same fields.
		tp, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(header[:len(header):len(header)], "\r\n"...)))).ReadMIMEHeader()
		if err == nil {
			for name, values := range tp {
				if got := h.Values(name); len(got) != len(values) {
					t.Fatalf("textproto reads %d %q fields, the relay %d:\n%q", len(values), name, len(got), header)
				}
			}
		}
		if len(h.Values("DKIM-Signature")) == 0 {
			var out heldBuffer
			err := rewriteLongLines(&out, norm)
			var ne *notEncodableError
			if err != nil && !errors.As(err, &ne) {
				t.Fatalf("rewriting long lines: %v", err)
			}
			if err == nil && hasLongLine(out.b) {
				t.Fatalf("a line over 998 octets is left:\n%q", out.b)
			}
			if err == nil && !hasLongLine(norm) && !bytes.Equal(out.b, norm) {
				t.Fatalf("a message without long lines was changed:\n%q\n%q", norm, out.b)
			}
		}
		froms, err := headerAddresses(h.Values("From"))
		if err != nil {
			return
		}
		// Sender settings may name the From and add a Reply-To, and
		// nothing else: the body is untouched, the result still parses,
		// its From addresses are the same, and a second pass adds nothing.
		u := &auth.User{Name: "app@example.com", DisplayName: "Zoë \"Billing\"", ReplyTo: "Help <help@example.com>"}
		out := applySenderDefaults(norm, h, u)
		_, bodyIn := splitHeader(norm)
		outHeader, bodyOut := splitHeader(out)
		if !bytes.Equal(bodyIn, bodyOut) {
			t.Fatalf("sender defaults changed the body:\n%q\n%q", norm, out)
		}
		h2, err := parseHeader(outHeader)
		if err != nil {
			t.Fatalf("sender defaults made the header unparseable (%v):\n%q\n%q", err, norm, out)
		}
		froms2, err := headerAddresses(h2.Values("From"))
		if err != nil || len(froms2) != len(froms) {
			t.Fatalf("sender defaults changed the From addresses (%v):\n%q\n%q", err, norm, out)
		}
		for i := range froms {
			if froms[i].Address != froms2[i].Address {
				t.Fatalf("From %q became %q", froms[i].Address, froms2[i].Address)
			}
		}
		if again := applySenderDefaults(out, h2, u); !bytes.Equal(again, out) {
			t.Fatalf("a second pass changed the message again:\n%q\n%q", out, again)
		}
	})
}
