package bounce_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"outbound/bounce"
)

// parsedDSN is a DSN as a mail program sees it.
type parsedDSN struct {
	header       mail.Header
	parts        []parsedPart
	perMessage   textproto.MIMEHeader   // first block of the delivery-status part
	perRecipient []textproto.MIMEHeader // the blocks after it, one per recipient
}

type parsedPart struct {
	header textproto.MIMEHeader
	body   []byte // transfer decoding undone
}

// parseDSN parses a DSN with the standard library's mail parsers, as a
// receiving MUA would, and checks the line rules of RFC 5322 on the way.
func parseDSN(raw []byte) (*parsedDSN, error) {
	for i, line := range strings.Split(string(raw), "\r\n") {
		if strings.ContainsAny(line, "\r\n") {
			return nil, fmt.Errorf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			return nil, fmt.Errorf("line %d is %d octets long", i+1, len(line))
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading the message: %w", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("Content-Type: %w", err)
	}
	if mediaType != "multipart/report" || params["report-type"] != "delivery-status" || params["boundary"] == "" {
		return nil, fmt.Errorf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
	d := &parsedDSN{header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", len(d.parts)+1, err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", len(d.parts)+1, err)
		}
		d.parts = append(d.parts, parsedPart{header: p.Header, body: body})
	}
	if len(d.parts) < 2 {
		return nil, fmt.Errorf("%d parts, want at least 2", len(d.parts))
	}
	if ct := d.parts[1].header.Get("Content-Type"); ct != "message/delivery-status" {
		return nil, fmt.Errorf("second part is %q", ct)
	}
	// The blocks of the delivery-status part are separated by blank
	// lines, which is exactly where ReadMIMEHeader stops.
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(d.parts[1].body)))
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			if d.perMessage == nil {
				d.perMessage = h
			} else {
				d.perRecipient = append(d.perRecipient, h)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("delivery-status: %w", err)
		}
	}
	if d.perMessage == nil {
		return nil, fmt.Errorf("delivery-status part has no fields")
	}
	return d, nil
}

func mustParseDSN(t *testing.T, raw []byte) *parsedDSN {
	t.Helper()
	d, err := parseDSN(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return d
}

func mustCompose(t *testing.T, r bounce.Report) []byte {
	t.Helper()
	raw, err := bounce.Compose(r)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

var (
	testNow     = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	testArrival = testNow.Add(-2 * time.Hour)
	testUntil   = testArrival.Add(5 * 24 * time.Hour)
)

const (
	gmailNoSuchUser = "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser"
	gmailOverQuota  = "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp"
	originalMessage = "From: Alice <alice@example.com>\r\nTo: bob@example.org, carol@example.net\r\nSubject: Quarterly report\r\nMessage-ID: <q1@example.com>\r\n\r\nThe body text that must not come back with RET=HDRS.\r\n"
)

func sampleReport() bounce.Report {
	return bounce.Report{
		ReportingMTA: "relay.example.com",
		To:           "alice@example.com",
		EnvelopeID:   "QQ314159",
		ArrivalDate:  testArrival,
		Now:          testNow,
		Recipients: []bounce.RecipientReport{{
			FinalRecipient:    "bob@example.org",
			OriginalRecipient: "rfc822;bob@example.org",
			Action:            bounce.ActionFailed,
			Status:            "5.1.1",
			RemoteMTA:         "smtp.mailgun.org",
			DiagnosticCode:    gmailNoSuchUser,
			LastAttempt:       testNow,
		}, {
			FinalRecipient: "carol@example.net",
			Action:         bounce.ActionDelayed,
			Status:         "4.2.2",
			RemoteMTA:      "smtp.mailgun.org",
			DiagnosticCode: gmailOverQuota,
			LastAttempt:    testNow,
			WillRetryUntil: testUntil,
		}},
		Original: []byte(originalMessage),
	}
}

// unfold undoes header folding the way readers compare values.
func unfold(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestComposeBuildsAMultipartReportWithThreeParts(t *testing.T) {
	d := mustParseDSN(t, mustCompose(t, sampleReport()))

	from, err := mail.ParseAddress(d.header.Get("From"))
	if err != nil || from.Address != "MAILER-DAEMON@relay.example.com" {
		t.Errorf("From %q: %v", d.header.Get("From"), err)
	}
	to, err := mail.ParseAddress(d.header.Get("To"))
	if err != nil || to.Address != "alice@example.com" {
		t.Errorf("To %q: %v", d.header.Get("To"), err)
	}
	if got := d.header.Get("Subject"); got != "Undelivered Mail Returned to Sender" {
		t.Errorf("Subject %q", got)
	}
	if date, err := d.header.Date(); err != nil || !date.Equal(testNow) {
		t.Errorf("Date %q: %v", d.header.Get("Date"), err)
	}
	if id := d.header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@relay.example.com>") {
		t.Errorf("Message-ID %q", id)
	}
	for field, want := range map[string]string{"Mime-Version": "1.0", "Auto-Submitted": "auto-replied"} {
		if got := d.header.Get(field); got != want {
			t.Errorf("%s %q, want %q", field, got, want)
		}
	}
	if len(d.parts) != 3 {
		t.Fatalf("%d parts, want 3", len(d.parts))
	}
	for i, want := range []string{"text/plain", "message/delivery-status", "text/rfc822-headers"} {
		mt, _, err := mime.ParseMediaType(d.parts[i].header.Get("Content-Type"))
		if err != nil || mt != want {
			t.Errorf("part %d is %q, want %s", i+1, d.parts[i].header.Get("Content-Type"), want)
		}
	}
}

func TestComposeDeliveryStatusFieldsParseBack(t *testing.T) {
	d := mustParseDSN(t, mustCompose(t, sampleReport()))

	for field, want := range map[string]string{
		"Reporting-Mta":        "dns; relay.example.com",
		"Original-Envelope-Id": "QQ314159",
	} {
		if got := d.perMessage.Get(field); got != want {
			t.Errorf("%s %q, want %q", field, got, want)
		}
	}
	if arrival, err := mail.ParseDate(d.perMessage.Get("Arrival-Date")); err != nil || !arrival.Equal(testArrival) {
		t.Errorf("Arrival-Date %q: %v", d.perMessage.Get("Arrival-Date"), err)
	}

	if len(d.perRecipient) != 2 {
		t.Fatalf("%d recipient blocks, want 2", len(d.perRecipient))
	}
	bob, carol := d.perRecipient[0], d.perRecipient[1]
	for _, c := range []struct {
		h           textproto.MIMEHeader
		field, want string
	}{
		{bob, "Original-Recipient", "rfc822;bob@example.org"},
		{bob, "Final-Recipient", "rfc822; bob@example.org"},
		{bob, "Action", "failed"},
		{bob, "Status", "5.1.1"},
		{bob, "Remote-Mta", "dns; smtp.mailgun.org"},
		{bob, "Diagnostic-Code", "smtp; " + gmailNoSuchUser},
		{carol, "Final-Recipient", "rfc822; carol@example.net"},
		{carol, "Action", "delayed"},
		{carol, "Status", "4.2.2"},
		{carol, "Diagnostic-Code", "smtp; " + gmailOverQuota},
	} {
		if got := unfold(c.h.Get(c.field)); got != c.want {
			t.Errorf("%s: %s %q, want %q", c.h.Get("Final-Recipient"), c.field, got, c.want)
		}
	}
	if carol.Get("Original-Recipient") != "" {
		t.Error("Original-Recipient written though the client gave no ORCPT")
	}
	if last, err := mail.ParseDate(bob.Get("Last-Attempt-Date")); err != nil || !last.Equal(testNow) {
		t.Errorf("Last-Attempt-Date %q: %v", bob.Get("Last-Attempt-Date"), err)
	}
	if until, err := mail.ParseDate(carol.Get("Will-Retry-Until")); err != nil || !until.Equal(testUntil) {
		t.Errorf("Will-Retry-Until %q: %v", carol.Get("Will-Retry-Until"), err)
	}
	if bob.Get("Will-Retry-Until") != "" {
		t.Error("Will-Retry-Until on a failed recipient")
	}
}

func TestComposeHumanPartQuotesEachUpstreamReplyExactly(t *testing.T) {
	d := mustParseDSN(t, mustCompose(t, sampleReport()))
	text := string(d.parts[0].body)
	for _, s := range []string{
		gmailNoSuchUser, gmailOverQuota,
		"bob@example.org", "the recipient address does not exist",
		"carol@example.net", "the recipient's mailbox is full",
		"smtp.mailgun.org",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("the notification does not say %q:\n%s", s, text)
		}
	}
}

func TestComposeDelayedNoticeSaysUntilWhenTheRelayKeepsTrying(t *testing.T) {
	r := sampleReport()
	r.Recipients = r.Recipients[1:]
	d := mustParseDSN(t, mustCompose(t, r))
	if got := d.header.Get("Subject"); got != "Delayed Mail (still being retried)" {
		t.Errorf("Subject %q", got)
	}
	text := unfold(string(d.parts[0].body))
	for _, s := range []string{"keeps trying until " + testUntil.Format(time.RFC1123Z), "do not need to send the message again"} {
		if !strings.Contains(text, s) {
			t.Errorf("the notification does not say %q:\n%s", s, text)
		}
	}
}

func TestComposeFailureAfterRetriesSaysTheRelayGaveUp(t *testing.T) {
	r := sampleReport()
	r.Recipients = []bounce.RecipientReport{{
		FinalRecipient: "carol@example.net", Action: bounce.ActionFailed, Status: "4.2.2", DiagnosticCode: gmailOverQuota,
	}}
	d := mustParseDSN(t, mustCompose(t, r))
	if text := unfold(string(d.parts[0].body)); !strings.Contains(text, "kept retrying and has now given up") {
		t.Errorf("notification:\n%s", text)
	}
}

func TestComposeWithReturnHeadersSendsBackTheHeadersButNotTheBody(t *testing.T) {
	d := mustParseDSN(t, mustCompose(t, sampleReport()))
	part := d.parts[2]
	if ct := part.header.Get("Content-Type"); ct != "text/rfc822-headers" {
		t.Fatalf("third part is %q", ct)
	}
	body := string(part.body)
	if !strings.Contains(body, "Subject: Quarterly report\r\n") || !strings.Contains(body, "Message-ID: <q1@example.com>") {
		t.Errorf("headers missing:\n%s", body)
	}
	if strings.Contains(body, "The body text") {
		t.Errorf("the body came back with RET=HDRS:\n%s", body)
	}
}

func TestComposeWithReturnFullSendsBackTheWholeMessage(t *testing.T) {
	r := sampleReport()
	r.ReturnFull = true
	d := mustParseDSN(t, mustCompose(t, r))
	part := d.parts[2]
	if ct := part.header.Get("Content-Type"); ct != "message/rfc822" {
		t.Fatalf("third part is %q", ct)
	}
	if string(part.body) != originalMessage {
		t.Errorf("returned message differs:\n%q\nwant\n%q", part.body, originalMessage)
	}
	inner, err := mail.ReadMessage(bytes.NewReader(part.body))
	if err != nil || inner.Header.Get("Subject") != "Quarterly report" {
		t.Errorf("the returned message does not parse: %v", err)
	}
}

func TestComposeWithoutTheOriginalHasTwoParts(t *testing.T) {
	r := sampleReport()
	r.Original = nil
	if d := mustParseDSN(t, mustCompose(t, r)); len(d.parts) != 2 {
		t.Errorf("%d parts, want 2", len(d.parts))
	}
}

func TestComposeNeutralizesHeaderInjection(t *testing.T) {
	r := sampleReport()
	r.To = "alice@example.com>\r\nBcc: victim@example.net\r\nX-Injected: <yes"
	r.Postmaster = "postmaster@relay.example.com\nX-Injected: yes"
	r.ReportingMTA = "relay.example.com\r\nX-Injected: yes"
	r.EnvelopeID = "id\r\n\r\nX-Injected: yes"
	r.Recipients[0].FinalRecipient = "bob@example.org\r\nAction: delivered"
	r.Recipients[0].OriginalRecipient = "rfc822;bob@example.org\nX-Injected: yes"
	r.Recipients[0].RemoteMTA = "mx.example.org\r\n\r\nFinal-Recipient: rfc822; mallory@example.net"
	r.Recipients[0].DiagnosticCode = "550 5.1.1 no\r\n\r\nX-Injected: yes\rAction: delivered\x00"
	raw := mustCompose(t, r)
	d := mustParseDSN(t, raw)

	for _, h := range []map[string][]string{d.header, d.perMessage} {
		for key := range h {
			if strings.HasPrefix(key, "X-Injected") || key == "Bcc" {
				t.Errorf("injected field %s", key)
			}
		}
	}
	if len(d.perRecipient) != 2 {
		t.Fatalf("%d recipient blocks, want 2: an injected blank line split one", len(d.perRecipient))
	}
	bob := d.perRecipient[0]
	if got := bob["Action"]; len(got) != 1 || got[0] != "failed" {
		t.Errorf("Action %q", got)
	}
	if got := bob["Final-Recipient"]; len(got) != 1 {
		t.Errorf("Final-Recipient %q", got)
	}
	for key := range bob {
		if strings.HasPrefix(key, "X-Injected") {
			t.Errorf("injected field %s", key)
		}
	}
	if bytes.IndexByte(raw, 0) >= 0 {
		t.Error("a NUL byte reached the message")
	}
}

func TestComposeFoldsLongDiagnosticCodesWithinTheLineLimit(t *testing.T) {
	long := "550 5.7.1" + strings.Repeat(" a reasonably long explanation", 100)
	word := strings.Repeat("x", 2500)
	r := sampleReport()
	r.Recipients[0].DiagnosticCode = long
	r.Recipients[1].DiagnosticCode = "451 " + word
	raw := mustCompose(t, r)
	d := mustParseDSN(t, raw) // checks every line is at most 998 octets

	if got := unfold(d.perRecipient[0].Get("Diagnostic-Code")); got != "smtp; "+long {
		t.Errorf("folded field does not unfold to the reply:\n%q", got)
	}
	// A 2500-character word cannot be folded, only broken; nothing is lost.
	got := strings.ReplaceAll(d.perRecipient[1].Get("Diagnostic-Code"), " ", "")
	if got != "smtp;451"+word {
		t.Errorf("broken word lost characters: %d of %d", len(got), len("smtp;451"+word))
	}
	for _, line := range strings.Split(string(d.parts[1].body), "\r\n") {
		if len(line) > 78 && strings.Contains(line, " ") && !strings.Contains(line, word[:100]) {
			t.Errorf("line of %d characters was not folded: %q", len(line), line)
		}
	}
}

func TestComposeWritesAMultiLineReplyAsOneField(t *testing.T) {
	r := sampleReport()
	r.Recipients = r.Recipients[:1]
	r.Recipients[0].DiagnosticCode = "550-5.1.1 The email account that you tried to reach does not exist.\n550 5.1.1 Learn more at https://support.google.com/mail/?p=NoSuchUser"
	d := mustParseDSN(t, mustCompose(t, r))
	want := "smtp; 550-5.1.1 The email account that you tried to reach does not exist. 550 5.1.1 Learn more at https://support.google.com/mail/?p=NoSuchUser"
	if got := unfold(d.perRecipient[0].Get("Diagnostic-Code")); got != want {
		t.Errorf("Diagnostic-Code %q", got)
	}
	text := string(d.parts[0].body)
	if !strings.Contains(text, "    550-5.1.1 The email account") || !strings.Contains(text, "    550 5.1.1 Learn more") {
		t.Errorf("the notification does not quote both lines:\n%s", text)
	}
}

func TestComposeLabelsANetworkErrorAsNotAnSMTPReply(t *testing.T) {
	r := sampleReport()
	r.Recipients[1].DiagnosticCode = "dial tcp 192.0.2.25:587: connect: connection refused"
	d := mustParseDSN(t, mustCompose(t, r))
	if got := d.perRecipient[1].Get("Diagnostic-Code"); got != "X-Outbound; dial tcp 192.0.2.25:587: connect: connection refused" {
		t.Errorf("Diagnostic-Code %q", got)
	}
}

func TestComposeKeepsTheDeliveryStatusPartSevenBit(t *testing.T) {
	r := sampleReport()
	r.Recipients[0].FinalRecipient = "jörg+news@exämple.de"
	r.Recipients[0].OriginalRecipient = "utf-8;jörg+news@exämple.de"
	r.Recipients[0].DiagnosticCode = "550 5.1.1 Benutzer unbekannt: jörg"
	d := mustParseDSN(t, mustCompose(t, r))
	for i, c := range d.parts[1].body {
		if c >= 0x80 {
			t.Fatalf("8-bit octet at %d of the delivery-status part:\n%s", i, d.parts[1].body)
		}
	}
	bob := d.perRecipient[0]
	if got := bob.Get("Final-Recipient"); got != `utf-8; j\x{F6}rg\x{2B}news@ex\x{E4}mple.de` {
		t.Errorf("Final-Recipient %q", got)
	}
	if got := bob.Get("Diagnostic-Code"); got != `smtp; 550 5.1.1 Benutzer unbekannt: j\x{F6}rg` {
		t.Errorf("Diagnostic-Code %q", got)
	}
	if text := string(d.parts[0].body); !strings.Contains(text, "jörg+news@exämple.de") {
		t.Errorf("the notification mangled the address:\n%s", text)
	}
}

func TestComposeNormalizesTheOriginalsLines(t *testing.T) {
	r := sampleReport()
	r.ReturnFull = true
	r.Original = []byte("Subject: bare\nX-Long: " + strings.Repeat("h", 1500) + "\n\n" + strings.Repeat("b", 2100) + "\rend")
	d := mustParseDSN(t, mustCompose(t, r)) // checks CRLF and line lengths
	inner, err := mail.ReadMessage(bytes.NewReader(d.parts[2].body))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(inner.Header.Get("X-Long"), " ", ""); got != strings.Repeat("h", 1500) {
		t.Errorf("long header lost characters: %d", len(got))
	}
	body, _ := io.ReadAll(inner.Body)
	if got := strings.ReplaceAll(string(body), "\r\n", ""); got != strings.Repeat("b", 2100)+"end" {
		t.Errorf("body lost characters")
	}
}

func TestComposeLabelsAnEightBitOriginal(t *testing.T) {
	r := sampleReport()
	r.ReturnFull = true
	r.Original = []byte("Subject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo Jörg\r\n")
	d := mustParseDSN(t, mustCompose(t, r))
	if got := d.header.Get("Content-Transfer-Encoding"); got != "8bit" {
		t.Errorf("top-level Content-Transfer-Encoding %q, want 8bit", got)
	}
	if got := d.parts[2].header.Get("Content-Transfer-Encoding"); got != "8bit" {
		t.Errorf("returned part's Content-Transfer-Encoding %q, want 8bit", got)
	}
}

func TestComposeSubjectNamesTheWorstOutcome(t *testing.T) {
	for _, c := range []struct {
		actions []bounce.Action
		subject string
	}{
		{[]bounce.Action{bounce.ActionDelivered, bounce.ActionDelayed, bounce.ActionFailed}, "Undelivered Mail Returned to Sender"},
		{[]bounce.Action{bounce.ActionRelayed, bounce.ActionDelayed}, "Delayed Mail (still being retried)"},
		{[]bounce.Action{bounce.ActionDelivered, bounce.ActionRelayed}, "Successful Mail Delivery Report"},
	} {
		r := sampleReport()
		r.Recipients = nil
		for i, a := range c.actions {
			st := map[bounce.Action]string{bounce.ActionFailed: "5.0.0", bounce.ActionDelayed: "4.0.0"}[a]
			if st == "" {
				st = "2.0.0"
			}
			r.Recipients = append(r.Recipients, bounce.RecipientReport{
				FinalRecipient: fmt.Sprintf("r%d@example.org", i), Action: a, Status: st,
			})
		}
		d := mustParseDSN(t, mustCompose(t, r))
		if got := d.header.Get("Subject"); got != c.subject {
			t.Errorf("%v: Subject %q, want %q", c.actions, got, c.subject)
		}
		if len(d.perRecipient) != len(c.actions) {
			t.Errorf("%v: %d recipient blocks", c.actions, len(d.perRecipient))
		}
	}
}

func TestComposeRefusesReportsThatMustNotBeSent(t *testing.T) {
	for name, change := range map[string]func(*bounce.Report){
		"null sender":              func(r *bounce.Report) { r.To = "" },
		"sender of only spaces":    func(r *bounce.Report) { r.To = " \r\n " },
		"no reporting MTA":         func(r *bounce.Report) { r.ReportingMTA = "" },
		"no clock":                 func(r *bounce.Report) { r.Now = time.Time{} },
		"no recipients":            func(r *bounce.Report) { r.Recipients = nil },
		"no final recipient":       func(r *bounce.Report) { r.Recipients[0].FinalRecipient = "rfc822;" },
		"malformed status":         func(r *bounce.Report) { r.Recipients[0].Status = "550" },
		"unknown action":           func(r *bounce.Report) { r.Recipients[0].Action = "bounced" },
		"delayed with 5.x.x":       func(r *bounce.Report) { r.Recipients[1].Status = "5.2.2" },
		"failed with 2.x.x":        func(r *bounce.Report) { r.Recipients[0].Status = "2.0.0" },
		"delivered with a failure": func(r *bounce.Report) { r.Recipients[0].Action = bounce.ActionDelivered },
	} {
		r := sampleReport()
		change(&r)
		if raw, err := bounce.Compose(r); err == nil {
			t.Errorf("%s: composed a DSN:\n%s", name, raw)
		}
	}
}

func TestComposeIsDeterministicButEachReportHasItsOwnID(t *testing.T) {
	a, b := mustCompose(t, sampleReport()), mustCompose(t, sampleReport())
	if !bytes.Equal(a, b) {
		t.Error("the same report composed twice differs")
	}
	r := sampleReport()
	r.Now = r.Now.Add(time.Second)
	c := mustParseDSN(t, mustCompose(t, r))
	if c.header.Get("Message-Id") == mustParseDSN(t, a).header.Get("Message-Id") {
		t.Error("two reports share a Message-ID")
	}
}

func TestComposeDefaultsFinalRecipientTypeOnce(t *testing.T) {
	r := sampleReport()
	r.Recipients[0].FinalRecipient = "rfc822;bob@example.org"
	d := mustParseDSN(t, mustCompose(t, r))
	if got := d.perRecipient[0].Get("Final-Recipient"); got != "rfc822; bob@example.org" {
		t.Errorf("Final-Recipient %q", got)
	}
}
