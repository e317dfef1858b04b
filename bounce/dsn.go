package bounce

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is what happened to one recipient, in the words of RFC 3464
// section 2.3.3.
type Action string

const (
	// ActionFailed: the relay gave up on the recipient.
	ActionFailed Action = "failed"
	// ActionDelayed: the relay has not delivered yet and keeps trying.
	ActionDelayed Action = "delayed"
	// ActionDelivered: delivered, to a destination that confirms it.
	ActionDelivered Action = "delivered"
	// ActionRelayed: handed to an upstream that will send no further DSNs.
	ActionRelayed Action = "relayed"
)

// RecipientReport is what a DSN says about one recipient.
type RecipientReport struct {
	// FinalRecipient is the recipient address the relay delivered to,
	// written "rfc822; addr" (or "utf-8; ..." for an internationalized
	// address).
	FinalRecipient string
	// OriginalRecipient is the ORCPT value as the client gave it
	// ("rfc822;addr"), or "" if it gave none.
	OriginalRecipient string
	Action            Action
	// Status is the RFC 3463 status: 2.x.x for delivered and relayed,
	// 4.x.x for delayed, 5.x.x (or 4.x.x after the retry period ran out)
	// for failed. Verdict.Status is meant for it.
	Status string
	// RemoteMTA is the upstream host the relay talked to, or "".
	RemoteMTA string
	// DiagnosticCode is the upstream's exact reply ("550 5.1.1 user
	// unknown"), written "smtp; ...". Text that is not an SMTP reply (a
	// network error) is written with the diagnostic type "X-Outbound", as
	// Postfix writes "X-Postfix". May be "".
	DiagnosticCode string
	// LastAttempt is when the relay last tried; zero leaves the field out.
	LastAttempt time.Time
	// WillRetryUntil is when the relay stops trying; only written for
	// delayed recipients, and left out when zero.
	WillRetryUntil time.Time
}

// Report is one delivery status notification about one message.
type Report struct {
	// ReportingMTA is our host name.
	ReportingMTA string
	// Postmaster is the From: address of the DSN; "" means
	// MAILER-DAEMON@ReportingMTA.
	Postmaster string
	// To is the envelope sender of the original message, who gets the DSN.
	// It must not be empty: nothing is ever reported to the null sender.
	To string
	// EnvelopeID is the ENVID the client gave, or "".
	EnvelopeID string
	// ArrivalDate is when the relay accepted the message; zero leaves the
	// field out.
	ArrivalDate time.Time
	// Recipients are the recipients this DSN reports on; at least one.
	Recipients []RecipientReport
	// Original is the original message with CRLF line endings; nil leaves
	// out the third part, which RFC 6522 makes optional.
	Original []byte
	// ReturnFull attaches the whole original as message/rfc822 (RET=FULL);
	// otherwise only its header section goes back, as text/rfc822-headers.
	ReturnFull bool
	// Now is the DSN's Date:, and part of its Message-ID. Compose reads no
	// clock.
	Now time.Time
}

// maxLine is the longest line RFC 5322 section 2.1.1 allows, CRLF excluded.
const maxLine = 998

// foldAt is where header fields are folded when they can be: RFC 5322
// recommends lines of at most 78 characters.
const foldAt = 78

// Compose builds a complete delivery status notification: a multipart/report
// message (RFC 6522) with a text/plain part for people that quotes each
// upstream reply, a message/delivery-status part (RFC 3464) for programs,
// and the original message (RET=FULL) or its header section. The result has
// CRLF line endings and no line longer than 998 octets.
//
// Compose is deterministic: its Message-ID and MIME boundary derive from a
// hash of the report, so it needs no random source and tests can compare
// its output. It fails only on a report that must not be sent as it is (no
// recipient address, no reporting MTA, a status that contradicts its action).
func Compose(r Report) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	mta := hostField(r.ReportingMTA)

	original := normalizeMessage(r.Original)
	var returned []byte
	returnedType, returnedDesc := "", ""
	if len(original) > 0 {
		if r.ReturnFull {
			returned, returnedType = original, "message/rfc822"
			returnedDesc = "Original message"
		} else {
			returned, returnedType = headerSection(original), "text/rfc822-headers"
			returnedDesc = "Original message headers"
		}
	}
	eightBit := hasEightBit(returned)

	human := humanPart(r, mta)
	report := statusPart(r, mta)

	sum := r.digest()
	boundary := chooseBoundary(sum, human, report, returned)

	var b bytes.Buffer
	postmaster := oneLine(r.Postmaster)
	if postmaster == "" {
		postmaster = "MAILER-DAEMON@" + mta
	}
	writeField(&b, "From", "Mail Delivery System <"+stripAngles(postmaster)+">")
	writeField(&b, "To", "<"+stripAngles(oneLine(r.To))+">")
	writeField(&b, "Subject", r.subject())
	writeField(&b, "Date", r.Now.Format(time.RFC1123Z))
	writeField(&b, "Message-ID", "<dsn."+hex.EncodeToString(sum[:12])+"."+strconv.FormatInt(r.Now.Unix(), 36)+"@"+idHost(mta)+">")
	writeField(&b, "MIME-Version", "1.0")
	// RFC 3834: tells vacation responders and the like not to answer.
	writeField(&b, "Auto-Submitted", "auto-replied")
	writeField(&b, "Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	if eightBit {
		writeField(&b, "Content-Transfer-Encoding", "8bit")
	}
	b.WriteString("\r\nThis is a MIME-formatted delivery status notification.\r\n")

	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(&b, "Content-Type", "text/plain; charset=utf-8")
	writeField(&b, "Content-Transfer-Encoding", "quoted-printable")
	writeField(&b, "Content-Description", "Notification")
	b.WriteString("\r\n")
	b.Write(human)

	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(&b, "Content-Type", "message/delivery-status")
	writeField(&b, "Content-Description", "Delivery report")
	b.WriteString("\r\n")
	b.Write(report)

	if returned != nil {
		b.WriteString("\r\n--" + boundary + "\r\n")
		writeField(&b, "Content-Type", returnedType)
		writeField(&b, "Content-Description", returnedDesc)
		if eightBit {
			writeField(&b, "Content-Transfer-Encoding", "8bit")
		}
		b.WriteString("\r\n")
		b.Write(returned)
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

func (r *Report) validate() error {
	if hostField(r.ReportingMTA) == "" {
		return errors.New("bounce: Report.ReportingMTA is empty; it names our host in the DSN")
	}
	if oneLine(r.To) == "" {
		return errors.New("bounce: Report.To is empty; a DSN is never sent to the null sender (RFC 5321 section 4.5.5)")
	}
	if r.Now.IsZero() {
		return errors.New("bounce: Report.Now is zero; it becomes the DSN's Date")
	}
	if len(r.Recipients) == 0 {
		return errors.New("bounce: Report.Recipients is empty; a DSN reports on at least one recipient")
	}
	for i, rr := range r.Recipients {
		if oneLine(trimAddrType(rr.FinalRecipient)) == "" {
			return fmt.Errorf("bounce: Report.Recipients[%d].FinalRecipient is empty", i)
		}
		st, ok := parseStatus(strings.TrimSpace(rr.Status))
		if !ok {
			return fmt.Errorf("bounce: Report.Recipients[%d].Status %q is not an RFC 3463 status code such as 5.1.1", i, rr.Status)
		}
		var want string
		switch rr.Action {
		case ActionFailed:
			if st.class == 4 || st.class == 5 {
				continue
			}
			want = "4.x.x or 5.x.x"
		case ActionDelayed:
			if st.class == 4 {
				continue
			}
			want = "4.x.x"
		case ActionDelivered, ActionRelayed:
			if st.class == 2 {
				continue
			}
			want = "2.x.x"
		default:
			return fmt.Errorf("bounce: Report.Recipients[%d].Action %q is not failed, delayed, delivered or relayed", i, rr.Action)
		}
		return fmt.Errorf("bounce: Report.Recipients[%d]: action %s needs a %s status, not %s", i, rr.Action, want, rr.Status)
	}
	return nil
}

// subject names the worst news in the report.
func (r *Report) subject() string {
	delayed := false
	for _, rr := range r.Recipients {
		switch rr.Action {
		case ActionFailed:
			return "Undelivered Mail Returned to Sender"
		case ActionDelayed:
			delayed = true
		}
	}
	if delayed {
		return "Delayed Mail (still being retried)"
	}
	return "Successful Mail Delivery Report"
}

// digest hashes everything the report says, for a Message-ID and boundary
// that differ between reports without a random source.
func (r *Report) digest() [32]byte {
	h := sha256.New()
	put := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(r.ReportingMTA)
	put(r.Postmaster)
	put(r.To)
	put(r.EnvelopeID)
	put(r.ArrivalDate.Format(time.RFC3339Nano))
	put(r.Now.Format(time.RFC3339Nano))
	for _, rr := range r.Recipients {
		put(rr.FinalRecipient)
		put(rr.OriginalRecipient)
		put(string(rr.Action))
		put(rr.Status)
		put(rr.RemoteMTA)
		put(rr.DiagnosticCode)
		put(rr.LastAttempt.Format(time.RFC3339Nano))
		put(rr.WillRetryUntil.Format(time.RFC3339Nano))
	}
	put(strconv.FormatBool(r.ReturnFull))
	put(string(r.Original))
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// chooseBoundary returns a MIME boundary that occurs in none of the parts.
// "=_" cannot occur in quoted-printable text, and a hash of the content
// cannot be planted in that content, but checking costs little.
func chooseBoundary(sum [32]byte, parts ...[]byte) string {
	for salt := 0; ; salt++ {
		b := "=_outbound_dsn_" + hex.EncodeToString(sum[:16])
		if salt > 0 {
			b += "_" + strconv.Itoa(salt)
		}
		clash := false
		for _, p := range parts {
			if bytes.Contains(p, []byte(b)) {
				clash = true
				break
			}
		}
		if !clash {
			return b
		}
	}
}

// humanPart writes the text/plain part, quoted-printable encoded: it quotes
// upstream replies verbatim, which may hold any byte and lines of any length.
func humanPart(r Report, mta string) []byte {
	var t strings.Builder
	t.WriteString("This is the mail delivery system at " + mta + ".\n")

	section := func(action Action, intro string) {
		var rs []RecipientReport
		for _, rr := range r.Recipients {
			if rr.Action == action || (action == ActionDelivered && rr.Action == ActionRelayed) {
				rs = append(rs, rr)
			}
		}
		if len(rs) == 0 {
			return
		}
		t.WriteString("\n" + wrap(intro, 72) + "\n")
		for _, rr := range rs {
			t.WriteString("\n" + wrap(displayAddr(rr.FinalRecipient)+": "+reason(rr)+".", 72) + "\n")
			if diag := strings.TrimSpace(rr.DiagnosticCode); diag != "" {
				server := "The upstream server"
				if h := hostField(rr.RemoteMTA); h != "" {
					server = "The server " + h
				}
				t.WriteString("    " + server + " answered:\n")
				for _, line := range splitLines(diag) {
					t.WriteString("    " + printable(line) + "\n")
				}
			}
			if !rr.LastAttempt.IsZero() {
				t.WriteString("    Last attempt: " + rr.LastAttempt.Format(time.RFC1123Z) + "\n")
			}
			if rr.Action == ActionDelayed && !rr.WillRetryUntil.IsZero() {
				t.WriteString("    The relay keeps trying until " + rr.WillRetryUntil.Format(time.RFC1123Z) + ".\n")
			}
		}
	}
	section(ActionFailed, "Your message could not be delivered to the recipients below. "+
		"The relay has given up on them; the reasons follow.")
	delayIntro := "Your message has not been delivered yet to the recipients below. " +
		"The relay keeps trying"
	if until := latestRetry(r.Recipients); !until.IsZero() {
		delayIntro += " until " + until.Format(time.RFC1123Z)
	}
	delayIntro += " and will tell you if it gives up. This is only a warning: " +
		"you do not need to send the message again."
	section(ActionDelayed, delayIntro)
	section(ActionDelivered, "Your message was delivered to the recipients below.")

	t.WriteString("\n" + wrap("The attached delivery report is for mail programs. "+
		returnedNote(r), 72) + "\n")

	var b bytes.Buffer
	qp := quotedprintable.NewWriter(&b) // turns the \n above into CRLF
	qp.Write([]byte(t.String()))        // writes to a bytes.Buffer do not fail
	qp.Close()
	out := b.Bytes()
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

func returnedNote(r Report) string {
	switch {
	case len(r.Original) == 0:
		return ""
	case r.ReturnFull:
		return "A copy of your message is attached after it."
	default:
		return "The headers of your message are attached after it."
	}
}

func latestRetry(rs []RecipientReport) time.Time {
	var t time.Time
	for _, rr := range rs {
		if rr.Action == ActionDelayed && rr.WillRetryUntil.After(t) {
			t = rr.WillRetryUntil
		}
	}
	return t
}

// reason explains one recipient's outcome in words, from the upstream's reply
// when there is one, otherwise from the status code.
func reason(rr RecipientReport) string {
	switch rr.Action {
	case ActionDelivered:
		return "delivered"
	case ActionRelayed:
		return "handed on to a server that sends no further delivery reports"
	}
	rep := parseReply(0, "", strings.TrimSpace(rr.DiagnosticCode))
	if rep.status.isZero() {
		rep.status, _ = parseStatus(strings.TrimSpace(rr.Status))
	}
	v := judge(rep)
	why := strings.TrimSuffix(v.Explanation, retrySuffix)
	if rr.Action == ActionFailed && strings.HasPrefix(strings.TrimSpace(rr.Status), "4.") {
		why += "; the relay kept retrying and has now given up"
	}
	return why
}

// statusPart writes the message/delivery-status part: the per-message fields,
// then one block per recipient, each after a blank line (RFC 3464 section
// 2.1). All of it is 7-bit ASCII, as the media type requires.
func statusPart(r Report, mta string) []byte {
	var b bytes.Buffer
	writeField(&b, "Reporting-MTA", "dns; "+mta)
	if id := asciiField(r.EnvelopeID); id != "" {
		writeField(&b, "Original-Envelope-Id", id)
	}
	if !r.ArrivalDate.IsZero() {
		writeField(&b, "Arrival-Date", r.ArrivalDate.Format(time.RFC1123Z))
	}
	for _, rr := range r.Recipients {
		b.WriteString("\r\n")
		if orcpt := originalRecipientField(rr.OriginalRecipient); orcpt != "" {
			writeField(&b, "Original-Recipient", orcpt)
		}
		writeField(&b, "Final-Recipient", addressField(trimAddrType(rr.FinalRecipient)))
		writeField(&b, "Action", string(rr.Action))
		writeField(&b, "Status", strings.TrimSpace(rr.Status))
		if h := hostField(rr.RemoteMTA); h != "" {
			writeField(&b, "Remote-MTA", "dns; "+h)
		}
		if diag := asciiField(rr.DiagnosticCode); diag != "" {
			writeField(&b, "Diagnostic-Code", diagnosticType(diag)+"; "+diag)
		}
		if !rr.LastAttempt.IsZero() {
			writeField(&b, "Last-Attempt-Date", rr.LastAttempt.Format(time.RFC1123Z))
		}
		if rr.Action == ActionDelayed && !rr.WillRetryUntil.IsZero() {
			writeField(&b, "Will-Retry-Until", rr.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.Bytes()
}

// diagnosticType is "smtp" for an SMTP reply, as RFC 3464 section 2.3.6
// wants, and our own X- type for anything else.
func diagnosticType(diag string) string {
	if _, _, ok := cutCode(diag); ok {
		return "smtp"
	}
	return "X-Outbound"
}

// trimAddrType removes an "rfc822;" a caller may have put before the final
// recipient, so the field does not say it twice.
func trimAddrType(addr string) string {
	a := strings.TrimSpace(addr)
	if len(a) >= 7 && strings.EqualFold(a[:7], "rfc822;") {
		return strings.TrimSpace(a[7:])
	}
	return a
}

// addressField writes an address as "rfc822; addr", or, when it is not
// ASCII, as "utf-8; " and the address in RFC 6533 utf-8-addr-xtext form,
// which keeps the part 7-bit.
func addressField(addr string) string {
	a := oneLine(addr)
	if isASCII(a) {
		return "rfc822; " + a
	}
	return "utf-8; " + utf8AddrXtext(a)
}

// originalRecipientField writes an ORCPT value "type;address". A value
// without a type is taken to be an RFC 822 address.
func originalRecipientField(orcpt string) string {
	v := oneLine(orcpt)
	if v == "" {
		return ""
	}
	typ, addr, ok := strings.Cut(v, ";")
	if !ok {
		typ, addr = "rfc822", v
	}
	typ, addr = strings.TrimSpace(typ), strings.TrimSpace(addr)
	if typ == "" || !isASCII(typ) || strings.ContainsAny(typ, " ;") {
		typ = "rfc822"
	}
	if !isASCII(addr) {
		return "utf-8;" + utf8AddrXtext(addr)
	}
	return typ + ";" + addr
}

// utf8AddrXtext encodes an address as RFC 6533 utf-8-addr-xtext: printable
// ASCII except "+", "=", "\" and space as is, everything else as \x{HEX}.
func utf8AddrXtext(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c > ' ' && c < 0x7f && c != '+' && c != '=' && c != '\\' {
			b.WriteRune(c)
		} else {
			fmt.Fprintf(&b, `\x{%X}`, c)
		}
	}
	return b.String()
}

// oneLine makes s safe inside a header field: CR, LF, tabs and all other
// control characters become spaces, so nothing can start a new field, and
// runs of spaces collapse, so folding never leaves a line of only white
// space. Invalid UTF-8 becomes U+FFFD.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u2028' || c == '\u2029' {
			return ' '
		}
		return c
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// printable keeps a line of quoted text as it is, except for control
// characters (a NUL, a stray CR), which become spaces, and invalid UTF-8.
func printable(s string) string {
	return strings.Map(func(c rune) rune {
		if c < ' ' && c != '\t' || c == 0x7f {
			return ' '
		}
		return c
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// asciiField is oneLine with everything beyond ASCII written as \x{HEX}, for
// the 7-bit delivery-status part.
func asciiField(s string) string {
	s = oneLine(s)
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if c < 0x80 {
			b.WriteRune(c)
		} else {
			fmt.Fprintf(&b, `\x{%X}`, c)
		}
	}
	return b.String()
}

// hostField is asciiField without spaces: a host name has none, and "dns;
// host" must stay one token.
func hostField(s string) string {
	return strings.ReplaceAll(asciiField(s), " ", "")
}

// idHost keeps the characters a Message-ID's right-hand side may have.
func idHost(host string) string {
	h := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			return c
		}
		return -1
	}, host)
	h = strings.Trim(h, ".-")
	if h == "" {
		return "localhost"
	}
	return h
}

// stripAngles removes angle brackets, which would end or start the angle
// address we put the value in.
func stripAngles(s string) string {
	return strings.NewReplacer("<", "", ">", "").Replace(s)
}

func displayAddr(s string) string {
	return "<" + stripAngles(oneLine(trimAddrType(s))) + ">"
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasEightBit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// writeField writes "Name: value" and CRLF, folded before a space when the
// line would pass 78 characters (RFC 5322 section 2.2.3). A word too long
// for a 998-octet line is split, which inserts a space into it when the field
// is unfolded; that only happens to values no real reply has.
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for i, w := range strings.Split(value, " ") {
		// Fold only before a word: a continuation line must hold more
		// than white space.
		if i > 0 && w != "" && len(line)+1+len(w) > foldAt {
			b.WriteString(line)
			b.WriteString("\r\n")
			line = ""
		}
		line += " " + w
		for len(line) > maxLine {
			cut := maxLine
			for cut > 1 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			b.WriteString(line[:cut])
			b.WriteString("\r\n")
			line = " " + line[cut:]
		}
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}

// wrap breaks text at spaces into lines of at most width characters where
// words allow.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if n+1+utf8.RuneCountInString(w) > width {
				b.WriteString("\n")
				n = 0
			} else {
				b.WriteString(" ")
				n++
			}
		}
		b.WriteString(w)
		n += utf8.RuneCountInString(w)
	}
	return b.String()
}

// splitLines splits text at CRLF, LF or a lone CR.
func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(s, "\n")
}

// normalizeMessage gives the original message CRLF line endings throughout
// (a lone CR or LF becomes CRLF) and splits lines longer than 998 octets, so
// the DSN carrying it stays valid: a header line is continued on a folded
// line, a body line simply broken. A message accepted by the relay never has
// such lines; this is for the one that somehow does.
func normalizeMessage(msg []byte) []byte {
	if len(msg) == 0 {
		return nil
	}
	out := make([]byte, 0, len(msg)+len(msg)/50)
	inHeader := true
	for len(msg) > 0 {
		var line []byte
		i := bytes.IndexAny(msg, "\r\n")
		switch {
		case i < 0:
			line, msg = msg, nil
		case msg[i] == '\r' && i+1 < len(msg) && msg[i+1] == '\n':
			line, msg = msg[:i], msg[i+2:]
		default:
			line, msg = msg[:i], msg[i+1:]
		}
		if inHeader && len(line) == 0 {
			inHeader = false
		}
		limit := maxLine
		for len(line) > limit {
			out = append(out, line[:limit]...)
			out = append(out, '\r', '\n')
			line = line[limit:]
			if inHeader {
				out = append(out, ' ')
				limit = maxLine - 1
			}
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
	}
	return out
}

// headerSection returns the header section of a CRLF message, without the
// empty line that ends it. A message without a body is all header.
func headerSection(msg []byte) []byte {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return []byte{}
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}
