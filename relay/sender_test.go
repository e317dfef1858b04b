package relay

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"
	"testing"

	"outbound/auth"
)

func TestApplySenderDefaults(t *testing.T) {
	const (
		to   = "To: bob@example.net\r\nSubject: hi\r\n"
		body = "\r\nHello Bob.\r\nFrom: a body line is no header\r\nReply-To: nor is this\r\n"
	)
	named := &auth.User{Name: alice, DisplayName: "Alice Example"}
	replying := &auth.User{Name: alice, ReplyTo: "help@example.com"}
	both := &auth.User{Name: alice, DisplayName: "Alice Example", ReplyTo: "help@example.com"}
	for _, tc := range []struct {
		name string
		user *auth.User
		in   string
		want string // "" = nothing to change
	}{
		{"nil user", nil, "From: alice@example.com\r\n" + to + body, ""},
		{"no settings", &auth.User{Name: alice}, "From: alice@example.com\r\n" + to + body, ""},
		{"display name filled", named,
			"From: alice@example.com\r\n" + to + body,
			`From: "Alice Example" <alice@example.com>` + "\r\n" + to + body},
		{"display name filled, angle address", named,
			"Subject: first\r\nFrom: <alice@example.com>\r\nTo: bob@example.net\r\n" + body,
			"Subject: first\r\nFrom: \"Alice Example\" <alice@example.com>\r\nTo: bob@example.net\r\n" + body},
		{"empty quoted name filled", named,
			"From: \"\" <alice@example.com>\r\n" + to + body,
			`From: "Alice Example" <alice@example.com>` + "\r\n" + to + body},
		{"existing display name kept", named, "From: Al <alice@example.com>\r\n" + to + body, ""},
		{"existing encoded display name kept", named, "From: =?utf-8?q?Zo=C3=AB?= <alice@example.com>\r\n" + to + body, ""},
		{"comment name kept", named, "From: alice@example.com (Alice)\r\n" + to + body, ""},
		{"multiple From addresses left alone", named, "From: alice@example.com, bob@example.com\r\nSender: alice@example.com\r\n" + to + body, ""},
		{"two From fields left alone", named, "From: alice@example.com\r\nFrom: carol@example.com\r\n" + to + body, ""},
		{"group left alone", named, "From: Team: alice@example.com;\r\n" + to + body, ""},
		{"folded From replaced whole", named,
			"Subject: x\r\nFrom:\r\n   alice@example.com\r\n\t\r\nTo: bob@example.net\r\n" + body,
			"Subject: x\r\nFrom: \"Alice Example\" <alice@example.com>\r\nTo: bob@example.net\r\n" + body},
		{"folded From with a name kept", named, "From:\r\n\tAl\r\n <alice@example.com>\r\n" + to + body, ""},
		{"Reply-To added at the end of the header", replying,
			"From: alice@example.com\r\n" + to + body,
			"From: alice@example.com\r\n" + to + "Reply-To: help@example.com\r\n" + body},
		{"Reply-To with a name", &auth.User{Name: alice, ReplyTo: "Support Desk <help@example.com>"},
			"From: alice@example.com\r\n" + to + body,
			"From: alice@example.com\r\n" + to + "Reply-To: \"Support Desk\" <help@example.com>\r\n" + body},
		{"existing Reply-To kept", replying, "From: alice@example.com\r\nReply-To: sales@example.com\r\n" + to + body, ""},
		{"existing empty Reply-To kept", replying, "From: alice@example.com\r\nReply-To:\r\n" + to + body, ""},
		{"both applied", both,
			"From: alice@example.com\r\n" + to + body,
			`From: "Alice Example" <alice@example.com>` + "\r\n" + to + "Reply-To: help@example.com\r\n" + body},
		{"only Reply-To when the name is set", both,
			"From: Al <alice@example.com>\r\n" + to + body,
			"From: Al <alice@example.com>\r\n" + to + "Reply-To: help@example.com\r\n" + body},
		{"only the name when Reply-To is set", both,
			"From: alice@example.com\r\nReply-To: sales@example.com\r\n" + to + body,
			"From: \"Alice Example\" <alice@example.com>\r\nReply-To: sales@example.com\r\n" + to + body},
		{"UTF-8 display name encoded", &auth.User{Name: alice, DisplayName: "Zoë Example"},
			"From: alice@example.com\r\n" + to + body,
			"From: =?utf-8?q?Zo=C3=AB_Example?= <alice@example.com>\r\n" + to + body},
		{"case-insensitive From", named,
			"FROM: alice@example.com\r\n" + to + body,
			"FROM: \"Alice Example\" <alice@example.com>\r\n" + to + body},
		{"case-insensitive From, lower case", named,
			"from: alice@example.com\r\n" + to + body,
			"from: \"Alice Example\" <alice@example.com>\r\n" + to + body},
		{"case-insensitive Reply-To kept", both, "from: Al <alice@example.com>\r\nREPLY-TO: sales@example.com\r\n" + to + body, ""},
		{"DKIM-signed message left alone", both, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; h=from:to;\r\n\tb=abc\r\nFrom: alice@example.com\r\n" + to + body, ""},
		{"message without a body", both,
			"From: alice@example.com\r\nSubject: x\r\n",
			"From: \"Alice Example\" <alice@example.com>\r\nSubject: x\r\nReply-To: help@example.com\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.in)
			m, bad := parseMessage(msg)
			if bad != nil {
				t.Fatalf("test message does not parse: %v", bad)
			}
			changes := senderDefaults(m, tc.user)
			if tc.want == "" {
				if !changes.empty() {
					t.Fatalf("message changed, want it as it is:\n%s", written(t, m, changes))
				}
				return
			}
			got := written(t, m, changes)
			if string(got) != tc.want {
				t.Fatalf("got:\n%q\nwant:\n%q", got, tc.want)
			}
			if string(msg) != tc.in {
				t.Fatalf("the input slice was modified: %q", msg)
			}
		})
	}
}

// A long non-ASCII display name is folded between its encoded-words, and
// reads back as the name set.
func TestApplySenderDefaultsFoldsLongEncodedNames(t *testing.T) {
	name := strings.TrimSpace(strings.Repeat("Ærø ", 33)) // 197 bytes
	if err := auth.ValidateDisplayName(name); err != nil {
		t.Fatal(err)
	}
	u := &auth.User{Name: alice, DisplayName: name}
	msg := []byte("From: alice@example.com\r\nTo: bob@example.net\r\n\r\nbody\r\n")
	pm, _ := parseMessage(msg)
	got := written(t, pm, senderDefaults(pm, u))
	hb, rest := splitHeader(got)
	if string(rest) != "body\r\n" || !strings.HasSuffix(string(hb), "\r\nTo: bob@example.net\r\n") {
		t.Fatalf("rest of the message changed: %q", got)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(hb), "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	a, err := (&mail.AddressParser{WordDecoder: new(mime.WordDecoder)}).Parse(m.Header.Get("From"))
	if err != nil || a.Name != name || a.Address != alice {
		t.Fatalf("From reads back as %+v (%v), want %q <%s>", a, err, name, alice)
	}
}

// The session applies the user's settings to what it queues.
func TestSessionAppliesSenderDefaults(t *testing.T) {
	h := startRelay(t, nil)
	h.setSenderSettings(t)
	c := h.login(t, true)
	bare := "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: bare\r\n\r\nHello.\r\n"
	if err := send(c, alice, []string{"bob@example.net"}, bare); err != nil {
		t.Fatal(err)
	}
	if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
		t.Fatal(err)
	}
	if h.spool.count() != 2 {
		t.Fatalf("queued %d messages, want 2", h.spool.count())
	}
	first, second := string(h.spool.bodies[0]), string(h.spool.bodies[1])
	for _, want := range []string{"\r\nFrom: \"Alice Example\" <alice@example.com>\r\n", "\r\nSubject: bare\r\nReply-To: help@example.com\r\n\r\nHello.\r\n"} {
		if !strings.Contains(first, want) {
			t.Errorf("first message lacks %q:\n%s", want, first)
		}
	}
	if !strings.HasSuffix(second, simpleMessage[:strings.Index(simpleMessage, "\r\n\r\n")]+"\r\nReply-To: help@example.com\r\n\r\nHello Bob.\r\n") {
		t.Errorf("second message: the client's display name must be kept and Reply-To added:\n%s", second)
	}
}

// written is m as the session queues it (without its own headers), with
// changes made to its header and no long line re-encoded.
func written(t testing.TB, m *parsedMessage, changes headerChanges) []byte {
	t.Helper()
	var out heldBuffer
	if err := m.write(&out, changes); err != nil {
		t.Fatal(err)
	}
	return out.b
}

// The user's sender settings and the re-encoding of long lines are made in
// one pass over the header as the client sent it: the From is named, the
// encoding fields replaced, Reply-To added after them, and every address
// kept.
func TestSenderDefaultsAndLongLinesInOnePass(t *testing.T) {
	h := startRelay(t, nil)
	h.setSenderSettings(t)
	long := strings.Repeat("word ", 250)
	to := "To: " + strings.TrimSuffix(strings.Repeat("someone@example.net, ", 60), ", ")
	msg := "Subject: x\r\nFrom: alice@example.com\r\n" + to + "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + long + "\r\n"
	if err := send(h.login(t, true), alice, []string{"bob@example.net"}, msg); err != nil {
		t.Fatal(err)
	}
	queued := string(h.spool.bodies[0])
	if n := longestLine([]byte(queued)); n > 998 {
		t.Fatalf("a line of %d octets is left:\n%s", n, queued)
	}
	header, _, _ := strings.Cut(queued, "\r\n\r\n")
	for _, want := range []string{
		"\r\nSubject: x\r\nFrom: \"Alice Example\" <alice@example.com>\r\nTo: someone@example.net,",
		"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\nReply-To: help@example.com",
	} {
		if !strings.Contains(header, want) {
			t.Errorf("header lacks %q:\n%s", want, header)
		}
	}
	if strings.Contains(header, "8bit") {
		t.Errorf("the old encoding is left:\n%s", header)
	}
	m, bad := parseMessage([]byte(queued))
	if bad != nil {
		t.Fatal(bad)
	}
	if list, err := headerAddresses(m.header.Values("To")); err != nil || len(list) != 60 {
		t.Errorf("To reads back as %d addresses (%v)", len(list), err)
	}
}

// setSenderSettings gives alice the display name "Alice Example" and the
// Reply-To help@example.com.
func (h *harness) setSenderSettings(t *testing.T) {
	t.Helper()
	err := h.users.Update(alice, func(u *auth.User) error {
		u.DisplayName, u.ReplyTo = "Alice Example", "help@example.com"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
