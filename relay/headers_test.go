package relay

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// "From :" (white space before the colon, RFC 5322's obsolete syntax) is
// a From field to receivers, but net/textproto files it under "From ": a
// foreign From hidden that way went upstream next to an allowed one. The
// same trick hid the other fields the relay reads. Every such name is now
// refused, naming the field.
func TestHeaderFieldWithSpaceBeforeColonRefused(t *testing.T) {
	h := startRelay(t, nil)
	for _, hidden := range []string{
		"From : CEO <ceo@victim.example>",
		"From\t: CEO <ceo@victim.example>",
		"Sender : ceo@victim.example",
		"Reply-To : ceo@victim.example",
		"DKIM-Signature : v=1; d=victim.example; b=abc",
		"Message-ID : <x@victim.example>",
		"Date : Mon, 2 Jan 2006 15:04:05 +0000",
	} {
		c := h.login(t, true)
		msg := hidden + "\r\nFrom: alice@example.com\r\nSubject: wire money\r\n\r\nnow\r\n"
		name := strings.TrimRight(hidden[:strings.IndexByte(hidden, ':')], " \t")
		err := send(c, alice, []string{"bob@example.net"}, msg)
		wantCode(t, err, 550, smtp.EnhancedCode{5, 6, 0}, `header field "`+name+` :" has white space before its colon`)
	}
	if n := h.spool.count(); n != 0 {
		t.Fatalf("%d messages with a hidden field were queued", n)
	}
}

// Header field names are read one way everywhere: printable US-ASCII other
// than the colon, directly followed by the colon, compared without regard
// to case; anything else is refused with 550 5.6.0 naming the line.
func TestParseHeaderFieldNames(t *testing.T) {
	for _, tc := range []struct {
		block string
		want  string // "" = parses
	}{
		{"From: a@example.com\r\nSubject: x\r\n", ""},
		{"FROM: a@example.com\r\n", ""},
		{"X-Odd_Name!#$%&'*+-.^`|~: y\r\nFrom: a@example.com\r\n", ""},
		{"From: a@example.com\r\n\tfolded\r\n", ""},
		{"From : a@example.com\r\n", `"From :" has white space before its colon`},
		{"Subject: x\r\nFrom \t: a@example.com\r\n", `"From :" has white space before its colon`},
		{"Fr om: a@example.com\r\n", `name "Fr om" is not allowed`},
		{"Fr\x01om: a@example.com\r\n", `name "Fr\x01om" is not allowed`},
		{"Fröm: a@example.com\r\n", `is not allowed`},
		{": a@example.com\r\n", `name "" is not allowed`},
		{" From: a@example.com\r\n", "begins with a continuation line"},
		{"\tFrom: a@example.com\r\nSubject: x\r\n", "begins with a continuation line"},
		{"From a@example.com Mon Jan  2 15:04:05 2006\r\nFrom: a@example.com\r\n", `is not allowed`},
		{"Subject: x\r\nno colon here\r\n", `header line "no colon here" has no colon`},
	} {
		h, err := parseHeader([]byte(tc.block))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.block, err)
			} else if got := h.Get("from"); got != "a@example.com" && !strings.HasPrefix(got, "a@example.com") {
				t.Errorf("%q: From reads %q", tc.block, got)
			}
			continue
		}
		if err == nil || err.se.Code != 550 || err.se.EnhancedCode != (smtp.EnhancedCode{5, 6, 0}) || !strings.Contains(err.se.Message, tc.want) {
			t.Errorf("%q: got %v, want 550 5.6.0 containing %q", tc.block, err, tc.want)
		}
	}
}

// Values are unfolded, and every look-up ignores the case of the name.
func TestHeaderLookups(t *testing.T) {
	block := "from: a@example.com\r\nDKIM-SIGNATURE: v=1;\r\n\tb=abc\r\nReply-to:  x@example.com  \r\nResent-From: r@example.com\r\nresent-from: s@example.com\r\n"
	h, err := parseHeader([]byte(block))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("From"); got != "a@example.com" {
		t.Errorf("From = %q", got)
	}
	if got := h.Values("Dkim-Signature"); len(got) != 1 || got[0] != "v=1;\tb=abc" {
		t.Errorf("DKIM-Signature = %q", got)
	}
	if got := h.Get("REPLY-TO"); got != "x@example.com" {
		t.Errorf("Reply-To = %q", got)
	}
	if got := h.Values("Resent-From"); len(got) != 2 {
		t.Errorf("Resent-From = %q", got)
	}
	f := h.fields("dkim-signature")
	if len(f) != 1 || block[f[0].start:f[0].end] != "DKIM-SIGNATURE: v=1;\r\n\tb=abc\r\n" {
		t.Errorf("DKIM-Signature span = %+v", f)
	}
}

// Sender (Outlook shows "Sender on behalf of From"), Resent-From and
// Resent-Sender name who sent the message as much as From does: each
// address must be one the user may send as.
func TestForeignSenderFieldsRefused(t *testing.T) {
	h := startRelay(t, nil)
	for _, tc := range []struct{ field, want string }{
		{"Sender: ceo@bank.example", "Sender <ceo@bank.example> is not allowed for user <alice@example.com>"},
		{"sender: CEO <ceo@bank.example>", "Sender <ceo@bank.example> is not allowed"},
		{"Resent-From: alice@example.com, ceo@bank.example", "Resent-From <ceo@bank.example> is not allowed"},
		{"Resent-Sender: ceo@bank.example", "Resent-Sender <ceo@bank.example> is not allowed"},
	} {
		c := h.login(t, true)
		msg := "From: alice@example.com\r\n" + tc.field + "\r\nSubject: x\r\n\r\nbody\r\n"
		wantCode(t, send(c, alice, []string{"bob@example.net"}, msg), 550, smtp.EnhancedCode{5, 7, 1}, tc.want)
	}
	c := h.login(t, true)
	wantCode(t, send(c, alice, []string{"bob@example.net"}, "From: alice@example.com\r\nSender: <<<\r\n\r\nx\r\n"),
		550, smtp.EnhancedCode{5, 6, 0}, "its Sender header cannot be parsed")
	if n := h.spool.count(); n != 0 {
		t.Fatalf("%d messages with a foreign sender were queued", n)
	}

	// The user's own addresses and domains pass, and an empty field names
	// no one.
	for _, field := range []string{
		"Sender: Support <support@example.org>",
		"Resent-From: alice@example.com\r\nResent-Sender: bulk@EXAMPLE.org",
		"Sender:",
	} {
		c := h.login(t, true)
		msg := "From: alice@example.com\r\n" + field + "\r\nSubject: x\r\n\r\nbody\r\n"
		if err := send(c, alice, []string{"bob@example.net"}, msg); err != nil {
			t.Errorf("%q: %v", field, err)
		}
	}
}

// bareLineEndings (three counts) agrees with a walk over every byte on
// every mix of CR, LF and other bytes.
func TestBareLineEndingsCountsEveryLoneCRAndLF(t *testing.T) {
	walk := func(b []byte) int {
		n := 0
		for i := 0; i < len(b); i++ {
			switch b[i] {
			case '\r':
				if i+1 < len(b) && b[i+1] == '\n' {
					i++
					continue
				}
				n++
			case '\n':
				n++
			}
		}
		return n
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("a\r\n")
	for i := 0; i < 20000; i++ {
		b := make([]byte, rng.IntN(24))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := bareLineEndings(b), walk(b); got != want {
			t.Fatalf("bareLineEndings(%q) = %d, want %d", b, got, want)
		}
		if norm, _ := normalizeLineEndings(b); bareLineEndings(norm) != 0 || len(norm) != len(b)+walk(b) {
			t.Fatalf("normalizeLineEndings(%q) = %q", b, norm)
		}
	}
}
