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
	// finalUnlessSaidOtherwise is fromReply for failures that do not pass
	// by themselves (no such mailbox, no such domain, a loop, a message
	// the sending MTA has given up on): when the reply has neither a
	// reply code nor an enhanced code, as in the words a sending MTA
	// writes in its own bounces ("Sorry, no mailbox here by that name",
	// "retry timeout exceeded"), the verdict is permanent rather than the
	// usual temporary. Retry hints and 4xx codes still make it temporary.
	finalUnlessSaidOtherwise
	alwaysTemporary
	alwaysPermanent
)

// retryHints are the words with which servers say a failure will pass, even
// when they send a 5xx code with them.
var retryHints = []string{"try again", "try later", "retry later", "come back later", "temporar"}

// noRetryHints say the opposite with the same words: qmail's "I'm not going
// to try again; this message has been in the queue too long".
var noRetryHints = []string{"not going to try again", "will not succeed", "do not try again", "don't try again", "do not retry"}

func (c classRule) decide(r reply) Class {
	switch c {
	case alwaysTemporary:
		return Temporary
	case alwaysPermanent:
		return Permanent
	}
	if containsAny(r.text, retryHints) && !containsAny(r.text, noRetryHints) {
		return Temporary
	}
	switch r.code / 100 {
	case 5:
		return Permanent
	case 0:
		if r.status.class == 5 || (r.status.isZero() && c == finalUnlessSaidOtherwise) {
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
	whySenderNullMX  = "the sender's domain publishes a null MX (RFC 7505), so receivers refuse mail from it; the fix is in the sender domain's DNS"
	whyPTR           = "the sending server's IP address has no valid reverse DNS"
	whyTooLarge      = "the message is larger than the receiving server accepts"
	whySpam          = "the receiving server rejected the message as spam or unsafe content"
	whyFormat        = "the receiving server refused the message's format (RFC 5322 headers or content)"
	whyUser          = "the recipient address does not exist"
	whyDisabled      = "the recipient's mailbox is disabled or suspended"
	whyDomain        = "the recipient's domain does not exist or does not accept mail"
	whyPolicy        = "the receiving server refused the message for policy reasons"
	whyRelay         = "the upstream server refused to relay the message"
	whySender        = "the sender address was rejected"
	whyLoop          = "a mail loop was detected"
	whyExpired       = "the sending server gave up after retrying for the message's lifetime"
	whyNetwork       = "a network problem prevented delivery"
	whyDNS           = "a DNS lookup failed"
	whyTemporaryCode = "the upstream server reported a temporary failure"
	whyProtocol      = "the upstream server refused an SMTP command"
)

// Phrases shared by several rules.
var (
	// userUnknown are the ways servers say that a mailbox does not exist.
	userUnknown = []string{
		"user unknown", "unknown user", "no such user", "no such recipient", "no such mailbox", "unknown recipient",
		"recipient unknown", "address unknown", "does not exist", "doesn't exist", "doesn't have a", "not a valid mailbox",
		"no mailbox", "unknown or illegal alias", "recipient address rejected", "address rejected", "not our customer",
		"no longer on", "no longer valid", "no longer active", "no longer accepts", "no longer in use", "not have an account",
		"mailbox name not allowed",
		// The same in the languages bounces most often come in.
		"unbekannt", "existiert nicht", "inconnu", "n'existe pas", "desconocido", "no existe", "inesistente",
		"sconosciuto", "destinatario errato", "nie istnieje", "不存在", "存在しません",
	}
	// userUnknownRe says it with words in between: "User (bob@example.org)
	// unknown", "mailbox bob@example.org not found", "invalid recipient",
	// "unknown local-part", "not listed in Domino Directory", and a
	// server's own list of the addresses it takes: "not in recipient
	// list", "not in the valid recipients list". An address alone is not
	// enough after the noun: "Sender address rejected" is the sender's,
	// caught before.
	userUnknownRe = `\b(user|users|recipients?|addressee|mailbox|account|local-part)\b[^;]{0,40}\b(unknown|invalid|rejected|` +
		`not found|no longer exists?|not exists?|no exists?|not activated|inactivated|not ok|cannot be verified|` +
		`not a member|not known|not valid)\b|` +
		`\b(unknown|invalid|wrong|bad|no such|no valid|illegal|non-?existent|inexistent)\s+(local-part|users?|recipients?|` +
		`addressee|address|mailbox|account|destination)\b|\bnot listed in (the )?(domino directory|public name)|` +
		`\bnot (in|on) (the |my |our )?(valid )?recipients? list\b`
	// mailboxDisabled is an account that exists but takes no mail.
	mailboxDisabledRe = `\b(account|mailbox|user|recipient|inbox)\b[^;,]{0,40}\b(disabled|inactive|suspended|frozen|locked|` +
		`terminated|deactivated|deleted|closed|archived|expired)\b|\b(disabled|inactive|suspended|frozen|locked|deactivated)\b ` +
		`(account|mailbox|user|recipient)|\binactive (email )?address|\b(receiving|reception) (is )?disabled`
	// domainUnknown are the ways servers say that a domain does not exist
	// or takes no mail.
	domainUnknown = []string{
		"domain not found", "no such domain", "domain does not exist", "domain doesn't exist", "host unknown",
		"host not found", "name not found", "unrouteable address", "unroutable address", "nxdomain", "no mx record",
		"null mx", "nullmx", "does not accept mail", "domain is not reachable", "nonexistent domain", "non-existent domain",
		"unknown domain", "couldn't find any host", "couldn't find a mail exchanger", "no mail exchanger",
		"non-existent host", "nonexistent host", "no route found to domain", "dns domain", "domain name not found",
	}
	// noDomainRe is the bare status word "NO-DOMAIN" (or NO_DOMAIN) that
	// some servers send as their whole reply text. It must stand alone:
	// "no-domain.example" is a host name and "no-domain-policy" is some
	// other word, so it is bounded by anything but a letter, digit, dot or
	// dash, a sentence's final period allowed.
	noDomainRe = `(^|[^\w.-])no[-_]domain($|[^\w.-]|\.($|\s))`
)

// rules is the classification table. The first rule that matches decides;
// the package documentation explains the order of the groups.
var rules = compileRules([]rule{
	// 1. Phrases that settle the matter whatever the codes say.
	{text: []string{"retrying will not succeed"}, class: alwaysPermanent, cat: Blocklisted,
		why: "the receiving provider has blocked the sending server and says retrying will not succeed"},
	// Gmail's OverQuotaPerm: a full mailbox nobody reads will not empty
	// itself within the retry period.
	{text: []string{"over quota and inactive", "out of storage space and inactive"}, class: alwaysPermanent, cat: MailboxFull,
		why: "the recipient's mailbox is full and the account is inactive"},
	{text: []string{"mail loop", "routing loop", "too many hops", "hop count exceeded", "maximum hop count", "exceeded 50 hops",
		"loops back to myself", "looping", "loop detected", "mail loops back"},
		class: finalUnlessSaidOtherwise, cat: Other, why: whyLoop},
	// Microsoft answers unknown recipients with 5.1.10, which the registry
	// reserves for a null MX, and with 5.4.1 (directory based edge blocking).
	{text: []string{"recipientnotfound", "recipient not found", "recipient address rejected: access denied", "recipnotfound"},
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
	// Gmail's and Microsoft's rate-limit codes, before the words about
	// DKIM or reputation that come with them.
	{status: "*.7.28, 4.7.500-699, *.7.650", class: alwaysTemporary, cat: RateLimited, why: whyRate},
	// Sender authentication named in the text outranks the code: Yahoo
	// and Proton send DMARC failures as x.7.5, which the registry calls a
	// cryptographic failure, and Gmail as x.2.1.
	{text: []string{"dmarc", "dkim", "sender policy framework"}, re: `\bspf\b`, cat: Policy, why: whySenderAuth},
	{status: "*.7.10, *.7.11, *.7.5", class: alwaysTemporary, cat: TLS, why: whyTLS},
	{text: []string{"certificate", "handshake", "requiretls", "mta-sts", "dnssec"},
		re: `\b(starttls|tls|ssl|x509|dane|tlsa)\b`, class: alwaysTemporary, cat: TLS, why: whyTLS},
	// 530 is "authentication required" (RFC 4954); the STARTTLS variant was
	// caught just above.
	{reply: "530", class: alwaysTemporary, cat: UpstreamAuth, why: whyAuth},
	{text: []string{
		"authentication required", "authentication is required", "authentication failed", "authentication failure",
		"authentication unsuccessful", "authentication credentials invalid", "username and password not accepted",
		"invalid credentials", "incorrect authentication data", "smtpclientauthentication", "client was not authenticated",
		"client not authenticated", "application-specific password required", "please authenticate", "must authenticate",
		"auth required", "unauthenticated senders not allowed", "cannot authenticate", "authentication type",
		"authentication mechanism", "unauthenticated command", "smtp authentication", "without authentication",
		"log in with your web browser", "log in through your web browser", "fail authentication",
	}, class: alwaysTemporary, cat: UpstreamAuth, why: whyAuth},

	// DNS failures that will pass, before the unknown domains and the
	// malformed replies they mention: Postfix's "Host not found, try
	// again".
	{text: []string{"not found, try again", "malformed or unexpected name server reply", "temporary failure in name resolution",
		"server misbehaving", "host lookup did not complete", "dns query error", "name server timeout"},
		re:    `\b(host ?name|dns|name server|mx) lookup (failure|failed|error)`,
		class: alwaysTemporary, cat: Network, why: whyDNS},

	// 3. Sender authentication and the sending server's identity.
	{status: "*.7.25", cat: Policy, why: whyPTR},
	// x.7.27 is the sender's domain publishing a null MX (RFC 7505 section
	// 4.3): no authentication check failed, the domain says it takes no
	// mail, so nothing can answer a reply or a bounce. Gmail also sends SPF
	// failures as x.7.27; their words about SPF were caught above. The same
	// said in words, before the recipient's null MX below reads it as an
	// unknown domain.
	{status: "*.7.27", cat: Policy, why: whySenderNullMX},
	{re: `\bsender\b[^;]{0,80}\bnull[ -]?mx\b`, cat: Policy, why: whySenderNullMX},
	{status: "*.7.23, *.7.24, *.7.26, *.7.30, *.7.32, *.7.40, *.7.509, *.7.515", cat: Policy, why: whySenderAuth},
	{text: []string{"sender is unauthenticated", "unauthenticated email", "fails to pass authentication checks",
		"authentication checks"}, cat: Policy, why: whySenderAuth},
	// A missing or mismatched PTR is the reason even when the reply talks
	// of rate limiting it.
	{text: []string{"ptr record", "reverse dns", "rdns", "reverse hostname", "reverse lookup", "cannot find your hostname",
		"reverse dns entry", "dns ptr"}, cat: Policy, why: whyPTR},
	{text: []string{"helo command rejected", "ehlo command rejected", "helo rejected", "bad helo", "invalid helo",
		"helo/ehlo argument", "helo requires", "ehlo requires"}, cat: Policy, why: "the receiving server refused the sending server's HELO name"},

	// 4. The specific enhanced codes of what follows, before any phrase:
	// "552 5.2.2 Mailbox size exceeds ..." is a full mailbox, not a big
	// message. Too large is permanent, since the same message will never get
	// smaller; a full mailbox is temporary even as 5.2.2.
	{status: "*.3.4, *.2.3", class: alwaysPermanent, cat: MessageTooLarge, why: whyTooLarge},
	// The sender's own sending quota (Microsoft's "Submission quota
	// exceeded" comes as 5.2.2) is rate limiting, not a full mailbox.
	{text: []string{"submission quota", "sending quota", "sending limit", "send limit", "daily limit", "hourly limit",
		"message quota", "daily user sending", "relay limit", "recipient rate limit"},
		class: alwaysTemporary, cat: RateLimited, why: whyRate},
	{status: "*.2.2", class: alwaysTemporary, cat: MailboxFull, why: whyFull},
	// Microsoft's published codes: 5.7.505 is a recipient that does not
	// exist, 5.7.703 the sender's own organisation's block list, the
	// others a banned sending IP, tenant or domain.
	{status: "*.7.505", cat: UnknownUser, why: whyUser},
	{status: "*.7.703", cat: Policy, why: whyPolicy},
	{status: "*.7.502, *.7.503, *.7.507, *.7.511, *.7.513, *.7.606-649, *.7.705, *.7.708, *.7.800",
		class: alwaysTemporary, cat: Blocklisted, why: whyBlock},

	// 5. What clears by itself, even under a 5xx code, and too large. A
	// full mailbox first, then size (a size limit is not a rate limit),
	// greylisting, blocklists (a bad reputation outranks the rate limit it
	// causes), rate limiting.
	{text: []string{
		"mailbox full", "mailbox is full", "mailbox size limit", "over quota", "overquota", "exceeded storage allocation",
		"out of storage", "storage space", "mailbox quota", "disk quota", "user is over", "mailbox limit", "inbox is full",
		"file too large", "postfach voll", "zuviele mails", "boite pleine", "boîte pleine", "casella piena", "buzón lleno",
	}, re: `\b(mailbox|mail box|inbox|mailfolder|mail folder|storage|space)\b[^;]{0,60}\b(is full|full|not enough|exhausted)\b|` +
		`\bexhausted\b.{0,30}\b(storage|space)\b|\btoo many messages (on|in) (the )?(server|mailbox|folder)`,
		class: alwaysTemporary, cat: MailboxFull, why: whyFull},
	{text: []string{"too large", "too big", "message is too long", "attachment is too long", "exceeds size limit",
		"size exceeds", "number of attachments"},
		re:    `\b(mail|message|msg|data|header)\s?size\b|\bsize (limit|exceed)|\bexceeds? (the )?(fixed |maximum |max )*(message )?size`,
		class: finalUnlessSaidOtherwise, cat: MessageTooLarge, why: whyTooLarge},
	// Only now the bare word: "quota exceeded" after the sending quotas,
	// before the limits it often comes with ("quota exceed the hard limit").
	{text: []string{"quota"}, class: alwaysTemporary, cat: MailboxFull, why: whyFull},
	// Mimecast's greylisting reply names no greylisting.
	{text: []string{"greylist", "graylist", "grey-list", "gray-list", "grey list", "gray list"},
		re:    `\b(try again|retry) in \d+|internal resource (is )?temporarily unavailable`,
		class: alwaysTemporary, cat: Greylisted, why: whyGrey},
	// Blocklists, and providers' block codes: Outlook's S3150, Yahoo's
	// [BLnn], Comcast's BLnnnnnn, NetEase's HL:REP, HL:IHU and DT:RBL.
	{text: []string{
		"spamhaus", "spamcop", "barracuda", "sorbs", "blocked using", "listed at", "is listed", "are listed", "listed on",
		"listed by", "listing in", "blacklist", "blocklist", "black list", "block list", "denylist", "deny list",
		"(s3150)", "(as3150)", "banned sending ip", "banned sender", "traffic not accepted from this ip", "reputation",
		"black ip", "sender address blocked", "email reputation service", "denyip", "deny ip",
	}, re: `\b(rbl|dnsbl|uribl|surbl)s?\b|\bip\b.{0,60}\b(blocked|banned)\b|\[bl\d\d\]|\bbl\d{6}\b|\b(hl:(rep|ihu|mep|ipb)|dt:rbl)\b|` +
		`\b(rtr:bl|rly:b\d)\b`,
		class: alwaysTemporary, cat: Blocklisted, why: whyBlock},
	// Too many errors ends a session badly behaved, not a busy one.
	{text: []string{"too many errors", "too many unrecognized", "too many invalid", "too many bad commands"},
		cat: Other, why: whyProtocol},
	// QQ pauses mail to a recipient that got a burst of mail with "550
	// Mailbox unavailable or access denied"; QQ and NetEase send their
	// frequency limits as 550; Yahoo's TS* deferrals cite complaints.
	{text: []string{
		"rate limit", "rate-limit", "ratelimit", "throttl", "too many", "too fast", "too quickly", "too frequent",
		"try again slower", "receiving mail at a rate", "receiving email at a rate", "unusual rate", "sending rate",
		"message rate", "connection rate", "excessive volume", "unexpected volume", "excessive unknown recipients",
		"max message per connection", "concurrent connections", "frequency limit", "per hour", "receive limit",
		"user complaints", "mailbox unavailable or access denied", "too much mail", "too much email",
	}, re: `exceed(s|ed)? (the |your |its )?(\w+ ){0,3}limit|\blimit (\w+ ){0,4}exceeded|` +
		`\b(server|servers|ports?|system|systems|host)\b[^;.]{0,12}\bbusy\b|\btoo busy\b|` +
		`\b(hl:(icc|ifc)|mi:(dmc|sfq|stc)|rp:(drc|rcl|trc|qrc))\b`,
		class: alwaysTemporary, cat: RateLimited, why: whyRate},

	// 6. The message and its sender: the format (RFC 5322, malformed
	// MIME, bare line feeds) before spam, since Gmail adds "to reduce the
	// amount of spam" to its format refusals; relay and sender rejections,
	// which say more than the x.7.1 they come with; then spam and malware.
	{text: []string{"rfc 5322", "rfc5322", "rfc 2822", "rfc2822", "rfc compliant", "malformed", "bare linefeed",
		"bare line feed", "bare lf", "invalid message content", "message-id", "encoded-word", "duplicate header",
		"disallowed header", "from: header", "header is missing", "invalid header", "invalid data", "invalid structure",
		"mime error", "mime/reject"},
		cat: Policy, why: whyFormat},
	{text: []string{
		"relay access denied", "relaying denied", "relay denied", "relay not permitted", "not permitted to relay",
		"unable to relay", "we do not relay", "relaying not allowed", "relay not allowed", "denies relay",
		"relay rejected", "relay prohibited", "isn't in my list of allowed rcpthosts",
	}, re: `\brelay(ing)?\b.{0,30}\b(denied|not permitted|not allowed|prohibited|refused|rejected)\b|` +
		`\bunauthori[sz]ed relay|\brp:frl\b`, cat: Policy, why: whyRelay},
	// "Connection refused by policy" is a refusal, not a network failure.
	{re: `\b(refused|rejected|denied|blocked) (by|due to|for) (local |our |site )?polic`, cat: Policy, why: whyPolicy},
	{text: []string{"sender address rejected", "sender rejected", "sender verify failed", "sender denied", "sender domain",
		"domain of sender address", "badmailfrom", "fake sender", "invalid sender", "sender was rejected",
		"sender account", "from this sender", "accept mail from"},
		re: `unresolvable rfc\.?532[12]|\bdt:sum\b|` +
			`\b(sender|mail ?from|envelope from|return-path)\b.{0,30}\b(not|reject\w*|denied|invalid|unknown|refused|mismatch\w*|fail\w*)\b`,
		cat: Policy, why: whySender},
	{text: []string{"spam", "unsolicited", "junk mail", "virus", "malware", "phish", "content filter", "objectionable content",
		"mail score", "spam score", "messagescoring", "security issue"},
		re: `\bsuspicious\b|\bcontent\b.{0,30}\b(reject|refus|block|denied|not accepted)|` +
			`\b(reject|refus|block|denied)\w*\b.{0,30}\bcontent\b|\[ph\d\d\]|\bdt:spm\b`,
		cat: SpamContent, why: whySpam},

	// 7. The specific enhanced codes, by the RFC 3463 / RFC 5248 registry.
	// x.5.3 is "too many recipients", which RFC 5321 section 4.5.3.1.10
	// says to treat as temporary even under 552; Postfix's multi-recipient
	// bounce refusal shares the code but is final.
	{text: []string{"multi-recipient bounce"}, cat: Other, why: whyProtocol},
	{status: "*.5.3", class: alwaysTemporary, cat: RateLimited, why: whyRate},
	{status: "*.1.1", cat: UnknownUser, why: whyUser},
	{status: "*.1.3", cat: UnknownUser, why: "the recipient address is not valid"},
	{status: "*.1.6", cat: UnknownUser, why: "the recipient has moved and left no forwarding address"},
	{status: "*.2.1", cat: UnknownUser, why: whyDisabled},
	{status: "*.7.17", cat: UnknownUser, why: "the recipient's mailbox has a new owner"},
	{status: "*.1.2", cat: UnknownDomain, why: whyDomain},
	{status: "*.1.10", cat: UnknownDomain, why: "the recipient's domain does not accept mail (null MX)"},
	{status: "*.4.4, *.4.310", cat: UnknownDomain, why: "no mail server could be found for the recipient's domain"},
	{status: "*.1.7, *.1.8", cat: Policy, why: whySender},
	{status: "*.4.6, *.4.14", cat: Other, why: whyLoop},

	// 8. What the text says, before the generic codes (x.0.0, x.2.0, x.5.0,
	// x.7.1...), which say nothing the text does not say better.
	{text: domainUnknown, re: noDomainRe, class: finalUnlessSaidOtherwise, cat: UnknownDomain, why: whyDomain},
	{text: userUnknown, re: userUnknownRe, class: finalUnlessSaidOtherwise, cat: UnknownUser, why: whyUser},
	{re: mailboxDisabledRe, class: finalUnlessSaidOtherwise, cat: UnknownUser, why: whyDisabled},
	// RFC 5321's 550 text; under 450 the same words mean "busy".
	{reply: "5xx", text: []string{"mailbox unavailable", "mailbox not available"}, cat: UnknownUser, why: whyUser},
	// A message the sending MTA has given up on (Exim's "retry timeout
	// exceeded", qmail's "in the queue too long", x.4.7): final under a
	// 5xx or with no code at all, since it has already been retried for
	// days.
	{status: "*.4.7, *.4.300", class: finalUnlessSaidOtherwise, cat: Network, why: whyExpired},
	{text: []string{"retry timeout exceeded", "in the queue too long", "message expired", "delivery time expired",
		"queue.expired", "retry time exceeded"}, re: `could not be delivered for \d+ days|cannot send message for \d+ days`,
		class: finalUnlessSaidOtherwise, cat: Network, why: whyExpired},
	// Texts of failures that never produced a reply: Go's net and TLS
	// errors as logged, or typed into the CLI, and MTAs' own connection
	// failures.
	{text: []string{
		"connection refused", "actively refused", "connection reset", "broken pipe", "i/o timeout", "timed out",
		"timeout", "no route to host", "network is unreachable", "host is unreachable", "host is down", "no such host",
		"connection closed", "lost connection", "closed network connection", "deadline exceeded", "dial tcp", "read tcp",
		"write tcp", "connection died", "able to establish", "disconnected", "connection expired", "unable to connect",
		"could not connect", "failed to connect", "socket error",
	}, re: `\beof\b|\bconnection\b.{0,40}\bbroken\b`, class: alwaysTemporary, cat: Network, why: whyNetwork},
	// The receiving server's own troubles: storage, memory, I/O.
	{text: []string{"insufficient system", "system resources", "out of memory", "i/o error", "local error", "local problem",
		"internal error", "server error", "disk is full"}, cat: Other, why: "the receiving server has a problem of its own"},
	// Gmail's "421 4.7.0 Temporary System Problem. Try again later".
	{status: "*.7.0", text: retryHints, cat: Other, why: whyTemporaryCode},
	{text: []string{
		"sender identity", "sender signature", "not authorized to send", "not allowed to send", "not verified",
		"sendasdenied", "send as this sender", "policy", "denied", "not permitted", "prohibited", "prohibition",
		"not allowed", "rejected by", "not authorized", "no permit", "refused", "administrative action",
	}, cat: Policy, why: whyPolicy},

	// 9. The generic codes by the registry.
	{status: "*.4.*", class: alwaysTemporary, cat: Network, why: "a network or routing problem prevented delivery"},
	{status: "*.7.*", cat: Policy, why: whyPolicy},
	{status: "*.6.*", cat: Policy, why: whyFormat},

	// 10. The reply code alone.
	{reply: "552", class: alwaysTemporary, cat: MailboxFull, why: whyFull}, // "exceeded storage allocation"
	{reply: "551", cat: UnknownUser, why: "the recipient is not local to the receiving server"},
	{reply: "4xx", cat: Other, why: whyTemporaryCode},
	{reply: "5xx", cat: Other, why: "the upstream server refused the message"},
	{cat: Other, why: "the delivery attempt failed for an unknown reason"},
})
