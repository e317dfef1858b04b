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
		h, bad := parseHeader(header)
		if bad != nil {
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
		signed := len(h.Values("DKIM-Signature")) > 0
		if !signed {
			var out heldBuffer
			err := rewriteMessage(&out, norm)
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
		m, bad := parseMessage(norm)
		if bad != nil {
			return
		}
		// Sender settings may name the From and add a Reply-To, and
		// nothing else: the body is untouched, the result still parses,
		// its From addresses are the same, and a second pass adds nothing.
		u := &auth.User{Name: "app@example.com", DisplayName: "Zoë \"Billing\"", ReplyTo: "Help <help@example.com>"}
		changes := senderDefaults(m, u)
		out := written(t, m, changes)
		_, bodyIn := splitHeader(norm)
		_, bodyOut := splitHeader(out)
		if !bytes.Equal(bodyIn, bodyOut) {
			t.Fatalf("sender defaults changed the body:\n%q\n%q", norm, out)
		}
		sameSenders(t, m, out, u)

		// In place, as the session queues a message: the same bytes as the
		// relay's fields followed by the changed message, whether the room
		// in front takes the new header or the message has to move.
		added := []byte("Received: from client by relay.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n")
		for _, room := range []int{addedFieldsRoom, 0} {
			buf := newHeldBuffer(nil, 0, room)
			buf.Write(norm)
			pm, bad := parseMessage(buf.b)
			if bad != nil {
				t.Fatalf("parsing the same bytes again: %v", bad)
			}
			if err := replaceHeader(buf, pm, added, senderDefaults(pm, u)); err != nil {
				t.Fatal(err)
			}
			if want := append(append([]byte(nil), added...), out...); !bytes.Equal(buf.b, want) {
				t.Fatalf("in place (room %d):\n%q\nwant\n%q", room, buf.b, want)
			}
		}

		// With long lines re-encoded in the same pass, as the session
		// does: no long line is left, and the header reads as above.
		if signed || !hasLongLine(norm) {
			return
		}
		var both heldBuffer
		err = rewriteLongLines(&both, m, changes)
		var ne *notEncodableError
		if errors.As(err, &ne) {
			return
		}
		if err != nil {
			t.Fatalf("rewriting long lines with sender defaults: %v", err)
		}
		if hasLongLine(both.b) {
			t.Fatalf("a line over 998 octets is left:\n%q", both.b)
		}
		sameSenders(t, m, both.b, u)
	})
}

// sameSenders checks that out, m with u's sender defaults made, parses,
// has the From addresses of m, and that a second pass changes nothing.
func sameSenders(t *testing.T, m *parsedMessage, out []byte, u *auth.User) {
	t.Helper()
	m2, bad := parseMessage(out)
	if bad != nil {
		t.Fatalf("sender defaults made the header unparseable (%v):\n%q\n%q", bad, m.msg, out)
	}
	froms, froms2 := m.fromAddresses(), m2.fromAddresses()
	if len(froms2) != len(froms) {
		t.Fatalf("sender defaults changed the From addresses:\n%q\n%q", m.msg, out)
	}
	for i := range froms {
		if froms[i].Address != froms2[i].Address {
			t.Fatalf("From %q became %q", froms[i].Address, froms2[i].Address)
		}
	}
	if again := senderDefaults(m2, u); !again.empty() {
		t.Fatalf("a second pass changed the message again:\n%q\n%q", out, written(t, m2, again))
	}
}
