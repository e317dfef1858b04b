package relay

import (
	"bytes"
	"testing"

	"outbound/auth"
)

// FuzzMessageHandling runs the relay's message handling on arbitrary DATA:
// after normalization no bare CR or LF is left, normalizing twice changes
// nothing, header parsing never panics, and the user's sender settings
// (display name, Reply-To) change only what they may.
func FuzzMessageHandling(f *testing.F) {
	f.Add([]byte("From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\n\nfirst\n.\nMAIL FROM:<x@y>\r\n"))
	f.Add([]byte("From: a@b\r\r\n\r\n\r.\r\n"))
	f.Add([]byte("no header at all"))
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
