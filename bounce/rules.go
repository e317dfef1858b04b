package bounce

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// rule is one line of the classification table. All the conditions it sets
// must hold; a condition left empty holds for every reply.
type rule struct {
	// status is an enhanced status code pattern: "*.7.26" (any class),
	// "4.7.500-699" (a detail range), "*.4.*"; alternatives are separated by
	// commas.
	status string
	// reply is a reply code pattern: "535", "5xx"; alternatives separated
	// by commas. A reply without a code (a network error) never matches it.
	reply string
	// text lists lower-case phrases; one of them must occur in the reply
	// text, unless re matches it.
	text []string
	// re is a regular expression over the lower-cased reply text, for what
	// plain phrases cannot say (word boundaries, "try again in 5 minutes").
	re string

	class classRule
	cat   Category
	// why is the explanation, a lower-case sentence fragment without a
	// final period; temporary verdicts get "; will retry" appended.
	why string

	// Compiled from the fields above by compileRules.
	statuses []statusPattern
	replies  []string
	rx       *regexp.Regexp
}

// classRule says where a rule's class comes from.
type classRule int

const (
	// fromReply takes the class from the reply: words like "try again
	// later" make it temporary, then the reply code decides (4xx temporary,
	// 5xx permanent), then the enhanced code's class; nothing at all means
	// temporary.
	fromReply classRule = iota
	alwaysTemporary
	alwaysPermanent
)

// retryHints are the words with which servers say a failure will pass, even
// when they send a 5xx code with them.
var retryHints = []string{"try again", "try later", "retry later", "come back later", "temporar"}

func (c classRule) decide(r reply) Class {
	switch c {
	case alwaysTemporary:
		return Temporary
	case alwaysPermanent:
		return Permanent
	}
	if containsAny(r.text, retryHints) {
		return Temporary
	}
	switch r.code / 100 {
	case 5:
		return Permanent
	case 0:
		if r.status.class == 5 {
			return Permanent
		}
	}
	// 4xx, and 2xx or 3xx where a failure was expected: a protocol
	// surprise is not a reason to give up on a message.
	return Temporary
}

func (ru *rule) matches(r reply) bool {
	if len(ru.statuses) > 0 && !matchStatus(ru.statuses, r.status) {
		return false
	}
	if len(ru.replies) > 0 && !matchReply(ru.replies, r.code) {
		return false
	}
	if len(ru.text) > 0 || ru.rx != nil {
		if !containsAny(r.text, ru.text) && (ru.rx == nil || !ru.rx.MatchString(r.text)) {
			return false
		}
	}
	return true
}

func containsAny(s string, phrases []string) bool {
	for _, p := range phrases {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// statusPattern is one compiled alternative of rule.status; -1 is a wildcard.
type statusPattern struct {
	class, subject, detailMin, detailMax int
}

func matchStatus(ps []statusPattern, st status) bool {
	if st.isZero() {
		return false
	}
	for _, p := range ps {
		if (p.class < 0 || p.class == st.class) &&
			(p.subject < 0 || p.subject == st.subject) &&
			(p.detailMin < 0 || (st.detail >= p.detailMin && st.detail <= p.detailMax)) {
			return true
		}
	}
	return false
}

func matchReply(ps []string, code int) bool {
	if code == 0 {
		return false
	}
	c := strconv.Itoa(code)
	for _, p := range ps {
		ok := len(p) == len(c)
		for i := 0; ok && i < len(p); i++ {
			ok = p[i] == 'x' || p[i] == c[i]
		}
		if ok {
			return true
		}
	}
	return false
}

func parseStatusPattern(s string) (statusPattern, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return statusPattern{}, fmt.Errorf("status pattern %q: want class.subject.detail", s)
	}
	num := func(p string) (int, error) {
		if p == "*" {
			return -1, nil
		}
		return strconv.Atoi(p)
	}
	var p statusPattern
	var err error
	if p.class, err = num(parts[0]); err != nil {
		return p, fmt.Errorf("status pattern %q: %w", s, err)
	}
	if p.subject, err = num(parts[1]); err != nil {
		return p, fmt.Errorf("status pattern %q: %w", s, err)
	}
	lo, hi, isRange := strings.Cut(parts[2], "-")
	if p.detailMin, err = num(lo); err != nil {
		return p, fmt.Errorf("status pattern %q: %w", s, err)
	}
	p.detailMax = p.detailMin
	if isRange {
		if p.detailMax, err = strconv.Atoi(hi); err != nil || p.detailMax < p.detailMin {
			return p, fmt.Errorf("status pattern %q: bad detail range", s)
		}
	}
	return p, nil
}

// compileRules parses the patterns of the table. A mistake in the table is a
// programming error, found by any test that classifies anything, so it
// panics.
func compileRules(rs []rule) []rule {
	for i := range rs {
		ru := &rs[i]
		if ru.status != "" {
			for _, alt := range strings.Split(ru.status, ",") {
				p, err := parseStatusPattern(strings.TrimSpace(alt))
				if err != nil {
					panic("bounce: rule " + strconv.Itoa(i) + ": " + err.Error())
				}
				ru.statuses = append(ru.statuses, p)
			}
		}
		if ru.reply != "" {
			for _, alt := range strings.Split(ru.reply, ",") {
				alt = strings.TrimSpace(alt)
				if len(alt) != 3 || strings.Trim(alt, "0123456789x") != "" {
					panic(fmt.Sprintf("bounce: rule %d: bad reply pattern %q", i, alt))
				}
				ru.replies = append(ru.replies, alt)
			}
		}
		if ru.re != "" {
			ru.rx = regexp.MustCompile(ru.re)
		}
		for _, p := range ru.text {
			if p != strings.ToLower(p) {
				panic(fmt.Sprintf("bounce: rule %d: phrase %q is not lower case", i, p))
			}
		}
		if !ru.cat.Valid() || ru.why == "" {
			panic(fmt.Sprintf("bounce: rule %d: needs a category and an explanation", i))
		}
	}
	return rs
}

// Explanations shared by several rules.
const (
	whyAuth          = "the upstream server rejected the relay's credentials; the operator must fix the smarthost settings"
	whyTLS           = "the TLS connection to the upstream server failed; the operator must check the smarthost's TLS settings"
	whyRate          = "the receiving side is rate limiting the sender"
	whyFull          = "the recipient's mailbox is full"
	whyGrey          = "the receiving server greylisted the message, which asks senders to come back later"
	whyBlock         = "the sending server's IP address or domain is on a blocklist"
	whySenderAuth    = "the message failed the receiver's sender authentication checks (SPF, DKIM or DMARC)"
	whyTooLarge      = "the message is larger than the receiving server accepts"
	whySpam          = "the receiving server rejected the message as spam or unsafe content"
	whyUser          = "the recipient address does not exist"
	whyDomain        = "the recipient's domain does not exist or does not accept mail"
	whyPolicy        = "the receiving server refused the message for policy reasons"
	whyRelay         = "the upstream server refused to relay the message"
	whySender        = "the sender address was rejected"
	whyLoop          = "a mail loop was detected"
	whyNetwork       = "a network problem prevented delivery"
	whyTemporaryCode = "the upstream server reported a temporary failure"
)

// rules is the classification table. The first rule that matches decides;
// see the package documentation for why the groups come in this order.
var rules = compileRules([]rule{
	// 1. Phrases that settle the matter whatever the codes say.
	{text: []string{"retrying will not succeed"}, class: alwaysPermanent, cat: Blocklisted,
		why: "the receiving provider has blocked the sending server and says retrying will not succeed"},
	// Gmail's OverQuotaPerm: a full mailbox nobody reads will not empty
	// itself within the retry period.
	{text: []string{"over quota and inactive", "out of storage space and inactive"}, class: alwaysPermanent, cat: MailboxFull,
		why: "the recipient's mailbox is full and the account is inactive"},
	{text: []string{"mail loop", "routing loop", "too many hops", "hop count exceeded", "maximum hop count", "exceeded 50 hops", "loops back to myself"},
		cat: Other, why: whyLoop},
	// Microsoft answers unknown recipients with 5.1.10, which the registry
	// reserves for a null MX, and with 5.4.1 (directory based edge blocking).
	{text: []string{"recipientnotfound", "recipient not found", "recipient address rejected: access denied"},
		cat: UnknownUser, why: whyUser},
	// SendGrid's daily credit limit says "Authentication failed" too.
	{text: []string{"credits exceeded"}, class: alwaysTemporary, cat: RateLimited, why: "the upstream account's sending credits are used up"},
	// The recipient's organisation accepts only authenticated (internal)
	// senders: that is their policy, not a problem with our credentials.
	{text: []string{"resolver.rst.authrequired", "sender was not authenticated", "sender not authenticated"},
		cat: Policy, why: "the recipient accepts mail only from senders inside its own organisation"},

	// 2. Our own session with the upstream. Bad credentials and broken TLS
	// are the operator's misconfiguration, which gets fixed; messages wait
	// for the fix instead of bouncing, so these are always temporary.
	{status: "*.7.8, *.7.57, *.7.139", class: alwaysTemporary, cat: UpstreamAuth, why: whyAuth},
	{reply: "534, 535", class: alwaysTemporary, cat: UpstreamAuth, why: whyAuth},
	{status: "*.7.10, *.7.11, *.7.5", class: alwaysTemporary, cat: TLS, why: whyTLS},
	{re: `\b(starttls|tls|ssl|x509)\b|certificate|handshake`, class: alwaysTemporary, cat: TLS, why: whyTLS},
	// 530 is "authentication required" (RFC 4954); the STARTTLS variant was
	// caught just above.
	{reply: "530", class: alwaysTemporary, cat: UpstreamAuth, why: whyAuth},
	{text: []string{
		"authentication required", "authentication is required", "authentication failed",
		"authentication unsuccessful", "authentication credentials invalid", "username and password not accepted",
		"invalid credentials", "incorrect authentication data", "smtpclientauthentication",
		"client was not authenticated", "client not authenticated", "application-specific password required",
		"please authenticate", "must authenticate", "auth required", "unauthenticated senders not allowed",
	}, class: alwaysTemporary, cat: UpstreamAuth, why: whyAuth},

	// 3. Sender authentication: the sending domain's SPF, DKIM or DMARC.
	{status: "*.7.25", cat: Policy, why: "the sending server's IP address has no valid reverse DNS"},
	{status: "*.7.23, *.7.24, *.7.26, *.7.27, *.7.30, *.7.32, *.7.40, *.7.509, *.7.515", cat: Policy, why: whySenderAuth},
	{text: []string{"dmarc", "dkim", "sender policy framework", "sender is unauthenticated", "unauthenticated email", "fails to pass authentication checks"},
		re: `\bspf\b`, cat: Policy, why: whySenderAuth},

	// 4. The specific enhanced codes of what follows, before any phrase:
	// "552 5.2.2 Mailbox size exceeds ..." is a full mailbox, not a big
	// message. Too large is permanent, since the same message will never get
	// smaller; a full mailbox is temporary even as 5.2.2. 4.7.28 is Gmail's
	// rate limit, 4.7.500-699 and 4.7.650 Microsoft's, and x.5.3 "too many
	// recipients", which RFC 5321 section 4.5.3.1.10 says to treat as
	// temporary even under 552.
	{status: "*.3.4, *.2.3", class: alwaysPermanent, cat: MessageTooLarge, why: whyTooLarge},
	{status: "*.2.2", class: alwaysTemporary, cat: MailboxFull, why: whyFull},
	{status: "*.7.28, 4.7.500-699, *.7.650, *.5.3", class: alwaysTemporary, cat: RateLimited, why: whyRate},

	// 5. What clears by itself, even under a 5xx code, and too large.
	{text: []string{
		"mailbox full", "mailbox is full", "mailbox size limit", "over quota", "overquota", "exceeded storage allocation",
		"out of storage", "storage space", "mailbox quota", "disk quota", "user is over",
	}, class: alwaysTemporary, cat: MailboxFull, why: whyFull},
	{text: []string{
		"message size exceeds", "message too large", "message too big", "message is too large", "message is too big",
		"message size limit", "maximum message size", "message exceeded google's", "exceeds size limit", "size exceeds",
	}, class: alwaysPermanent, cat: MessageTooLarge, why: whyTooLarge},
	{text: []string{"greylist", "graylist", "grey-list", "gray-list", "grey list", "gray list"},
		re: `\b(try again|retry) in \d+`, class: alwaysTemporary, cat: Greylisted, why: whyGrey},
	{text: []string{
		"rate limit", "rate-limit", "ratelimit", "throttl", "too many", "too fast", "too quickly", "too frequent",
		"try again slower", "receiving mail at a rate", "unusual rate", "sending rate", "message rate", "connection rate",
		"sending limit", "sending quota", "message quota", "daily limit", "hourly limit", "excessive volume",
		"unexpected volume", "excessive unknown recipients", "max message per connection", "concurrent connections",
		"server busy", "server is busy",
	}, re: `exceed(s|ed)? (the |your |its )?(\w+ ){0,3}limit|\blimit (\w+ )?exceeded`,
		class: alwaysTemporary, cat: RateLimited, why: whyRate},
	// Only now the bare word: "quota exceeded" after the sending quotas.
	{text: []string{"quota"}, class: alwaysTemporary, cat: MailboxFull, why: whyFull},
	{text: []string{
		"spamhaus", "spamcop", "barracuda", "sorbs", "blocked using", "listed at", "is listed", "are listed", "listed on",
		"listed by", "listing in", "blacklist", "blocklist", "black list", "block list", "denylist", "deny list",
		"(s3150)", "banned sending ip", "banned sender", "traffic not accepted from this ip", "reputation",
	}, re: `\b(rbl|dnsbl|uribl|surbl)\b|\bip\b.{0,60}\b(blocked|banned)\b`,
		class: alwaysTemporary, cat: Blocklisted, why: whyBlock},

	// 6. The message itself.
	{text: []string{"spam", "unsolicited", "junk mail", "virus", "malware", "phish", "content rejected", "content filter",
		"rejected due to content", "objectionable content", "suspicious", "mail score", "spam score", "messagescoring"},
		cat: SpamContent, why: whySpam},
	// Relay and sender rejections say more than the x.7.1 they come with.
	{text: []string{
		"relay access denied", "relaying denied", "relay denied", "relay not permitted", "not permitted to relay",
		"unable to relay", "we do not relay", "relaying not allowed", "relay not allowed",
	}, cat: Policy, why: whyRelay},
	{text: []string{"sender address rejected", "sender rejected", "sender verify failed", "sender denied", "sender domain", "unresolvable rfc.5321"},
		cat: Policy, why: whySender},

	// 7. The enhanced status code, by the RFC 3463 / RFC 5248 registry.
	{status: "*.1.1", cat: UnknownUser, why: whyUser},
	{status: "*.1.3", cat: UnknownUser, why: "the recipient address is not valid"},
	{status: "*.1.6", cat: UnknownUser, why: "the recipient has moved and left no forwarding address"},
	{status: "*.2.1", cat: UnknownUser, why: "the recipient's mailbox is disabled"},
	{status: "*.1.2", cat: UnknownDomain, why: whyDomain},
	{status: "*.1.10", cat: UnknownDomain, why: "the recipient's domain does not accept mail (null MX)"},
	{status: "*.4.4, *.4.310", cat: UnknownDomain, why: "no mail server could be found for the recipient's domain"},
	{status: "*.1.7, *.1.8", cat: Policy, why: whySender},
	{status: "*.4.6, *.4.14", cat: Other, why: whyLoop},
	{status: "*.4.*", class: alwaysTemporary, cat: Network, why: "a network or routing problem prevented delivery"},
	// Gmail's "421 4.7.0 Temporary System Problem. Try again later".
	{status: "*.7.0", text: retryHints, cat: Other, why: whyTemporaryCode},
	{status: "*.7.*", cat: Policy, why: whyPolicy},

	// 8. Phrases for replies without a useful enhanced code.
	{text: []string{
		"domain not found", "no such domain", "domain does not exist", "domain doesn't exist", "host unknown",
		"host not found", "unrouteable address", "unroutable address", "name service error", "nxdomain", "no mx record",
		"null mx", "does not accept mail", "domain is not reachable", "nonexistent domain", "non-existent domain",
		"unknown domain",
	}, cat: UnknownDomain, why: whyDomain},
	{text: []string{
		"user unknown", "unknown user", "no such user", "no such recipient", "no such mailbox", "unknown recipient",
		"recipient unknown", "invalid recipient", "does not exist", "doesn't exist", "doesn't have a", "not a valid mailbox",
		"invalid mailbox", "mailbox not found", "no mailbox", "inactive email address", "account is disabled",
		"account has been disabled", "mailbox is disabled", "no longer valid", "unknown or illegal alias",
		"recipient address rejected", "address rejected",
	}, cat: UnknownUser, why: whyUser},
	// RFC 5321's 550 text; under 450 the same words mean "busy".
	{reply: "5xx", text: []string{"mailbox unavailable"}, cat: UnknownUser, why: whyUser},
	{text: []string{
		"sender identity", "sender signature", "not authorized to send", "not allowed to send", "not verified",
		"sendasdenied", "send as this sender", "policy", "denied", "not permitted", "prohibited", "prohibition",
	}, cat: Policy, why: whyPolicy},
	// Texts of failures that never produced a reply: Go's net and TLS
	// errors as logged, or typed into the CLI.
	{text: []string{
		"connection refused", "actively refused", "connection reset", "broken pipe", "i/o timeout", "timed out",
		"timeout", "no route to host", "network is unreachable", "host is unreachable", "host is down", "no such host",
		"server misbehaving", "temporary failure in name resolution", "connection closed", "lost connection",
		"closed network connection", "deadline exceeded", "dial tcp", "read tcp", "write tcp",
	}, re: `\beof\b`, class: alwaysTemporary, cat: Network, why: whyNetwork},

	// 9. The reply code alone.
	{reply: "552", class: alwaysTemporary, cat: MailboxFull, why: whyFull}, // "exceeded storage allocation"
	{reply: "551", cat: UnknownUser, why: "the recipient is not local to the receiving server"},
	{reply: "4xx", cat: Other, why: whyTemporaryCode},
	{reply: "5xx", cat: Other, why: "the upstream server refused the message"},
	{cat: Other, why: "the delivery attempt failed for an unknown reason"},
})
