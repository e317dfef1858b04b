package bounce

import (
	"fmt"
	"strconv"
	"strings"
)

// Class says whether a failure is worth retrying.
type Class int

const (
	// Temporary failures are retried with backoff until the message's
	// lifetime in the queue runs out. It is the zero value on purpose: a
	// failure nobody judged must not bounce mail.
	Temporary Class = iota
	// Permanent failures end delivery for that recipient at once.
	Permanent
)

// String returns "temporary" or "permanent", the words the CLI and the admin
// API print.
func (c Class) String() string {
	switch c {
	case Temporary:
		return "temporary"
	case Permanent:
		return "permanent"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Category says why a delivery failed, in words an operator can act on.
type Category string

// The categories. Their string values appear in CLI output, logs and the
// admin API, so they are part of the interface: do not rename them.
const (
	Network         Category = "network"           // no connection, timeout, reset, DNS, routing
	TLS             Category = "tls"               // handshake or certificate failure, TLS required
	UpstreamAuth    Category = "upstream-auth"     // the smarthost refused our credentials
	RateLimited     Category = "rate-limited"      // someone is throttling us or the recipient
	Greylisted      Category = "greylisted"        // come back later, by design
	MailboxFull     Category = "mailbox-full"      // the recipient is over quota
	Blocklisted     Category = "blocklisted"       // the sending IP or domain is on a list
	UnknownUser     Category = "unknown-user"      // the mailbox does not exist or is disabled
	UnknownDomain   Category = "unknown-domain"    // the domain does not exist or takes no mail
	Policy          Category = "policy"            // relay denied, sender rejected, SPF/DKIM/DMARC
	SpamContent     Category = "spam-content"      // the message itself looked like spam or malware
	MessageTooLarge Category = "message-too-large" // over the receiver's size limit
	Other           Category = "other"             // anything else
)

// categories lists every Category, in the order above.
var categories = []Category{
	Network, TLS, UpstreamAuth, RateLimited, Greylisted, MailboxFull, Blocklisted,
	UnknownUser, UnknownDomain, Policy, SpamContent, MessageTooLarge, Other,
}

// Valid reports whether c is one of the categories this package defines.
func (c Category) Valid() bool {
	for _, k := range categories {
		if c == k {
			return true
		}
	}
	return false
}

// Verdict is the judgement on one failure.
type Verdict struct {
	Class    Class
	Category Category
	// Explanation is one line for humans, such as "the recipient's mailbox
	// is full; will retry". It never contains a tab or a newline.
	Explanation string
	// Status is the RFC 3463 status code for a DSN about this failure: the
	// upstream's enhanced status code when it sent one, otherwise one
	// derived from Category, with its first digit matching Class (4 for
	// temporary, 5 for permanent). A 5.2.2 judged temporary becomes 4.2.2,
	// which RFC 3463 also allows in the final bounce ("persistent transient
	// failure").
	Status string

	// UpstreamWide says the upstream as a whole failed, not this message
	// or recipient: every message for it would fail the same way for now,
	// so the sender backs the upstream off and holds its messages instead
	// of retrying each on its own.
	//
	// UpstreamWide and MayFailOver depend on the phase the failure
	// happened in, so only [Judge] sets them; [Classify] and
	// [ClassifyError], which know no phase, leave both false.
	UpstreamWide bool
	// MayFailOver says the failure was temporary and came before the
	// upstream could have the message, so another upstream may take the
	// message in the same attempt without risking a duplicate.
	MayFailOver bool
}

// retrySuffix ends the explanation of every temporary verdict, so a reader of
// the log or the CLI output knows the message is not lost.
const retrySuffix = "; will retry"

// Classify judges an SMTP reply: code is the reply code (550; 0 if unknown),
// enhanced the RFC 3463 enhanced status code ("5.1.1"; "" if none) and text
// the reply text. The text may itself start with the reply code and the
// enhanced code, as in a log line ("550-5.1.1 The email account ..."); both
// are picked up from there when the arguments lack them. An enhanced code
// further inside the text, as a sending MTA writes it in its own bounces
// ("Sorry, no mailbox here by that name. (#5.1.1)"), is used when there is
// no other or only a generic X.0.0. Multi-line replies may be passed with
// their lines joined by newlines.
func Classify(code int, enhanced, text string) Verdict {
	return judge(parseReply(code, enhanced, text))
}

// reply is an SMTP reply normalized for the rules.
type reply struct {
	code   int    // 200-599, or 0 when unknown
	status status // zero when the reply had no enhanced status code
	text   string // lower case, whitespace collapsed, typographic quotes made plain
}

// status is a parsed enhanced status code, class.subject.detail. The zero
// value means "none".
type status struct {
	class, subject, detail int
}

func (s status) isZero() bool { return s.class == 0 }

// isGeneric reports whether s is X.0.0, "other or undefined status", which
// says nothing beyond its class.
func (s status) isGeneric() bool { return s.subject == 0 && s.detail == 0 }

func (s status) String() string {
	return fmt.Sprintf("%d.%d.%d", s.class, s.subject, s.detail)
}

// parseStatus parses "5.1.1". RFC 3463 allows classes 2, 4 and 5, a subject
// of 1 to 3 digits and a detail of 1 to 3 digits.
func parseStatus(s string) (status, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return status{}, false
	}
	var n [3]int
	for i, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return status{}, false
		}
		for _, c := range []byte(p) {
			if c < '0' || c > '9' {
				return status{}, false
			}
		}
		n[i], _ = strconv.Atoi(p)
	}
	if n[0] != 2 && n[0] != 4 && n[0] != 5 {
		return status{}, false
	}
	return status{n[0], n[1], n[2]}, true
}

// cutCode takes a reply code off the front of a reply text: "550 ...",
// "550-..." (a continuation line) or just "550".
func cutCode(t string) (int, string, bool) {
	if len(t) < 3 || t[0] < '2' || t[0] > '5' || !isDigit(t[1]) || !isDigit(t[2]) {
		return 0, t, false
	}
	if len(t) > 3 && t[3] != ' ' && t[3] != '-' {
		return 0, t, false
	}
	code, _ := strconv.Atoi(t[:3])
	if len(t) == 3 {
		return code, "", true
	}
	return code, strings.TrimSpace(t[4:]), true
}

// cutStatus takes an enhanced status code off the front of a reply text.
func cutStatus(t string) (status, string, bool) {
	end := strings.IndexAny(t, " \t\r\n")
	word := t
	if end >= 0 {
		word = t[:end]
	}
	st, ok := parseStatus(strings.TrimRight(word, ",;:"))
	if !ok {
		return status{}, t, false
	}
	return st, strings.TrimSpace(t[len(word):]), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// findStatus finds an enhanced status code inside a reply text: the first
// one that is not X.0.0, else the first X.0.0. Only failure classes (4 and
// 5) and the subjects RFC 3463 defines (0 to 7) count, and the code must
// stand on its own, so IP addresses ("192.0.2.25"), versions ("4.96.2")
// and Yahoo's "4.16.55.1" are not taken for one.
func findStatus(t string) (status, bool) {
	var generic status
	for i := 0; i < len(t); i++ {
		if t[i] != '4' && t[i] != '5' {
			continue
		}
		if i > 0 && (isDigit(t[i-1]) || t[i-1] == '.') {
			continue
		}
		end := i
		for end < len(t) && (isDigit(t[end]) || t[end] == '.') {
			end++
		}
		// A trailing full stop ends the sentence, not the code.
		word := strings.TrimSuffix(t[i:end], ".")
		st, ok := parseStatus(word)
		if !ok || st.subject > 7 {
			continue
		}
		if !st.isGeneric() {
			return st, true
		}
		if generic.isZero() {
			generic = st
		}
	}
	return generic, !generic.isZero()
}

// textNormalizer makes reply texts comparable with the lower-case phrases of
// the rules. Texts pasted from web pages and some providers' replies use
// typographic apostrophes ("doesn’t") and no-break spaces.
var textNormalizer = strings.NewReplacer("\u2019", "'", "\u2018", "'", "\u00a0", " ")

func parseReply(code int, enhanced, text string) reply {
	var r reply
	if code >= 200 && code <= 599 {
		r.code = code
	}
	t := strings.TrimSpace(text)
	if c, rest, ok := cutCode(t); ok && (r.code == 0 || r.code == c) {
		r.code, t = c, rest
	}
	if st, ok := parseStatus(strings.TrimSpace(enhanced)); ok {
		r.status = st
	}
	if st, rest, ok := cutStatus(t); ok {
		if r.status.isZero() {
			r.status = st
		}
		t = rest
	}
	// A sending MTA's own words carry the enhanced code inside the text
	// (qmail's "Sorry, no mailbox here by that name. (#5.1.1)"), and a
	// relay that quotes the next hop puts its code after a generic one
	// ("550 5.0.0 -5.1.1 The email account ... does not exist"). The code
	// found there is used when the reply had none, or only X.0.0.
	if r.status.isZero() || r.status.isGeneric() {
		if st, ok := findStatus(t); ok && (r.status.isZero() || !st.isGeneric()) {
			r.status = st
		}
	}
	r.text = strings.Join(strings.Fields(strings.ToLower(textNormalizer.Replace(t))), " ")
	return r
}

// judge applies the first matching rule. The table ends with a rule that
// matches everything, so there always is one.
func judge(r reply) Verdict {
	for i := range rules {
		ru := &rules[i]
		if !ru.matches(r) {
			continue
		}
		class := ru.class.decide(r)
		why := ru.why
		if class == Temporary {
			why += retrySuffix
		}
		return Verdict{
			Class:       class,
			Category:    ru.cat,
			Explanation: why,
			Status:      dsnStatus(r.status, ru.cat, class),
		}
	}
	panic("bounce: the rules table has no catch-all rule")
}

// defaultStatus gives the RFC 3463 subject and detail for a failure whose
// reply carried no enhanced status code. The choices follow what Postfix
// reports for the same failures (4.4.1 no answer, 4.7.5 TLS, ...).
var defaultStatus = map[Category][2]int{
	Network:         {4, 1}, // no answer from host
	TLS:             {7, 5}, // cryptographic failure
	UpstreamAuth:    {7, 8}, // authentication credentials invalid
	RateLimited:     {4, 5}, // mail system congestion
	Greylisted:      {7, 1}, // delivery not authorized (yet)
	MailboxFull:     {2, 2}, // mailbox full
	Blocklisted:     {7, 1}, // delivery not authorized
	UnknownUser:     {1, 1}, // bad destination mailbox address
	UnknownDomain:   {1, 2}, // bad destination system address
	Policy:          {7, 1}, // delivery not authorized
	SpamContent:     {7, 1}, // delivery not authorized
	MessageTooLarge: {3, 4}, // message too big for system
	Other:           {0, 0}, // other or undefined status
}

// dsnStatus picks the status for Verdict.Status: the upstream's own code if it
// gave one, its class digit made to agree with our class.
func dsnStatus(st status, cat Category, class Class) string {
	if st.isZero() {
		d := defaultStatus[cat]
		st = status{subject: d[0], detail: d[1]}
	}
	st.class = 4
	if class == Permanent {
		st.class = 5
	}
	return st.String()
}
