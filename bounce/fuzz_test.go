package bounce_test

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"outbound/bounce"
)

var dsnStatusPattern = regexp.MustCompile(`^[45]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// checkVerdict asserts what every verdict promises, whatever the input.
func checkVerdict(t *testing.T, v bounce.Verdict) {
	t.Helper()
	if v.Class != bounce.Temporary && v.Class != bounce.Permanent {
		t.Fatalf("class %d", v.Class)
	}
	if !v.Category.Valid() {
		t.Fatalf("category %q", v.Category)
	}
	if v.Explanation == "" || strings.ContainsAny(v.Explanation, "\t\r\n") {
		t.Fatalf("explanation %q", v.Explanation)
	}
	if strings.HasSuffix(v.Explanation, "; will retry") != (v.Class == bounce.Temporary) {
		t.Fatalf("%s verdict explained %q", v.Class, v.Explanation)
	}
	if !dsnStatusPattern.MatchString(v.Status) || (v.Status[0] == '4') != (v.Class == bounce.Temporary) {
		t.Fatalf("%s verdict with status %q", v.Class, v.Status)
	}
}

// FuzzClassify feeds Classify arbitrary replies: it must not panic, must
// return a valid verdict, and the CLI must agree with it.
func FuzzClassify(f *testing.F) {
	f.Add(550, "5.1.1", "The email account that you tried to reach does not exist.")
	f.Add(0, "", "550-5.1.1 user unknown")
	f.Add(0, "", "dial tcp 192.0.2.1:25: connect: connection refused")
	f.Add(552, "5.2.2", "over quota")
	f.Add(-1, "9.9.9", "")
	f.Add(421, "4.7.500-699", "\xff\xfe")
	f.Fuzz(func(t *testing.T, code int, enhanced, text string) {
		v := bounce.Classify(code, enhanced, text)
		checkVerdict(t, v)

		if code < 200 || code > 599 || strings.ContainsAny(enhanced+text, "\t\r\n") {
			return
		}
		var out bytes.Buffer
		line := strconv.Itoa(code) + "\t" + enhanced + "\t" + text + "\n"
		if err := bounce.ClassifyLines(strings.NewReader(line), &out); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(enhanced+text) == "" && strings.TrimSpace(line) == "" {
			return
		}
		want := v.Class.String() + "\t" + string(v.Category) + "\t" + v.Explanation + "\n"
		if got := out.String(); got != want {
			t.Fatalf("ClassifyLines(%q) = %q, Classify says %q", line, got, want)
		}
	})
}

// blank reports whether s holds nothing but white space and control
// characters, which Compose strips from every field.
func blank(s string) bool {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.TrimFunc(s, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) == ""
}

var topLevelFields = map[string]bool{
	"From": true, "To": true, "Subject": true, "Date": true, "Message-Id": true, "Mime-Version": true,
	"Auto-Submitted": true, "Content-Type": true, "Content-Transfer-Encoding": true,
}

// FuzzCompose composes DSNs from arbitrary field values and parses them back
// as a mail program would: whatever the values, the result must be a valid
// multipart/report with exactly the fields Compose writes.
func FuzzCompose(f *testing.F) {
	f.Add("alice@example.com", "relay.example.com", "", "bob@example.org", "rfc822;bob@example.org", "QQ314159",
		"smtp.mailgun.org", gmailNoSuchUser, 0, []byte(originalMessage), false)
	f.Add("a\r\nBcc: x@example.net", "relay\r\n.example", "pm\n@x", "b@x\r\nAction: delivered", "x\n", "\r\n\r\n",
		"mx\r\n\r\nX: y", "550 no\r\n\r\nX-Injected: yes", 1, []byte("Subject: s\n\nbody\r--=_outbound_dsn_"), true)
	f.Add("jörg@exämple.de", "relay.example.com", "", "jörg@exämple.de", "utf-8;jörg@exämple.de", "",
		"", strings.Repeat("x", 3000), 2, []byte(strings.Repeat("y", 5000)), true)
	f.Fuzz(func(t *testing.T, to, mta, postmaster, final, orcpt, envid, remote, diag string, action int, original []byte, full bool) {
		actions := []bounce.Action{bounce.ActionFailed, bounce.ActionDelayed, bounce.ActionDelivered, bounce.ActionRelayed}
		statuses := []string{"5.1.1", "4.2.2", "2.0.0", "2.0.0"}
		i := action % len(actions)
		if i < 0 {
			i = -i
		}
		now := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
		r := bounce.Report{
			ReportingMTA: mta, Postmaster: postmaster, To: to, EnvelopeID: envid,
			ArrivalDate: now.Add(-time.Hour), Now: now, Original: original, ReturnFull: full,
			Recipients: []bounce.RecipientReport{{
				FinalRecipient: final, OriginalRecipient: orcpt, Action: actions[i], Status: statuses[i],
				RemoteMTA: remote, DiagnosticCode: diag, LastAttempt: now, WillRetryUntil: now.Add(time.Hour),
			}},
		}
		raw, err := bounce.Compose(r)

		finalAddr := strings.TrimSpace(final)
		if len(finalAddr) >= 7 && strings.EqualFold(finalAddr[:7], "rfc822;") {
			finalAddr = finalAddr[7:]
		}
		unsendable := blank(to) || blank(mta) || blank(finalAddr)
		if err != nil {
			if !unsendable {
				t.Fatalf("Compose refused a sendable report: %v", err)
			}
			return
		}
		if unsendable {
			t.Fatalf("Compose accepted a report without a sender, MTA or recipient")
		}

		d, err := parseDSN(raw)
		if err != nil {
			t.Fatalf("%v\n%q", err, raw)
		}
		for key := range d.header {
			if !topLevelFields[key] {
				t.Fatalf("unexpected top-level field %q", key)
			}
		}
		wantParts := 2
		if len(original) > 0 {
			wantParts = 3
		}
		if len(d.parts) != wantParts {
			t.Fatalf("%d parts, want %d", len(d.parts), wantParts)
		}
		if len(d.perRecipient) != 1 {
			t.Fatalf("%d recipient blocks, want 1", len(d.perRecipient))
		}
		if got := d.perRecipient[0]["Action"]; len(got) != 1 || got[0] != string(actions[i]) {
			t.Fatalf("Action %q, want %s", got, actions[i])
		}
		if got := d.perRecipient[0]["Status"]; len(got) != 1 || got[0] != statuses[i] {
			t.Fatalf("Status %q, want %s", got, statuses[i])
		}
	})
}
