package bounce_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"outbound/bounce"
)

// corpusRow is one line of testdata/replies.tsv.
type corpusRow struct {
	line           int
	code           int
	enhanced, text string
	class          string
	category       bounce.Category
	// source says where the reply comes from: a provider's error table,
	// an RFC, an MTA's source or documentation.
	source string
}

func readCorpus(t *testing.T) []corpusRow {
	t.Helper()
	f, err := os.Open("testdata/replies.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []corpusRow
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 6 {
			t.Fatalf("replies.tsv:%d: %d columns, want 6 (CODE, ENHANCED, TEXT, CLASS, CATEGORY, SOURCE)", n, len(cols))
		}
		row := corpusRow{line: n, enhanced: cols[1], text: cols[2], class: cols[3], category: bounce.Category(cols[4]), source: cols[5]}
		if cols[0] != "" {
			if row.code, err = strconv.Atoi(cols[0]); err != nil {
				t.Fatalf("replies.tsv:%d: bad code %q", n, cols[0])
			}
		}
		if row.class != "temporary" && row.class != "permanent" {
			t.Fatalf("replies.tsv:%d: bad class %q", n, row.class)
		}
		if !row.category.Valid() {
			t.Fatalf("replies.tsv:%d: bad category %q", n, row.category)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestCorpusCoversEveryCategory(t *testing.T) {
	seen := map[bounce.Category]bool{}
	for _, row := range readCorpus(t) {
		seen[row.category] = true
	}
	for _, c := range []bounce.Category{
		bounce.Network, bounce.TLS, bounce.UpstreamAuth, bounce.RateLimited, bounce.Greylisted,
		bounce.MailboxFull, bounce.Blocklisted, bounce.UnknownUser, bounce.UnknownDomain, bounce.Policy,
		bounce.SpamContent, bounce.MessageTooLarge, bounce.Other,
	} {
		if !seen[c] {
			t.Errorf("no reply in the corpus is %s", c)
		}
	}
}

// want checks a verdict's class and category.
func want(t *testing.T, v bounce.Verdict, class bounce.Class, cat bounce.Category) {
	t.Helper()
	if v.Class != class || v.Category != cat {
		t.Errorf("got %s %s (%q), want %s %s", v.Class, v.Category, v.Explanation, class, cat)
	}
}

func TestMailboxFullIsTemporaryEvenUnder5xx(t *testing.T) {
	want(t, bounce.Classify(552, "5.2.2", "The email account that you tried to reach is over quota."), bounce.Temporary, bounce.MailboxFull)
	want(t, bounce.Classify(554, "", "delivery error: dd Sorry, your message cannot be delivered. This account is over quota."), bounce.Temporary, bounce.MailboxFull)
	want(t, bounce.Classify(552, "", "Requested mail action aborted: exceeded storage allocation"), bounce.Temporary, bounce.MailboxFull)
}

func TestInactiveOverQuotaMailboxIsPermanent(t *testing.T) {
	// Gmail's OverQuotaPerm: the one full mailbox that will not empty itself.
	want(t, bounce.Classify(552, "5.2.2", "The recipient's inbox is out of storage space and inactive."), bounce.Permanent, bounce.MailboxFull)
}

func TestBlocklistHitIsTemporaryEvenUnder5xx(t *testing.T) {
	want(t, bounce.Classify(554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"), bounce.Temporary, bounce.Blocklisted)
	want(t, bounce.Classify(550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150)."), bounce.Temporary, bounce.Blocklisted)
	want(t, bounce.Classify(550, "5.7.606", "Access denied, banned sending IP [192.0.2.1]."), bounce.Temporary, bounce.Blocklisted)
}

func TestSpecificTextOverridesTheCodesGenericCategory(t *testing.T) {
	// 5.7.1 alone is policy, permanent; the Spamhaus text says more.
	want(t, bounce.Classify(550, "5.7.1", "Delivery not authorized"), bounce.Permanent, bounce.Policy)
	want(t, bounce.Classify(550, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using Spamhaus"), bounce.Temporary, bounce.Blocklisted)
}

func TestProviderSayingRetryingWillNotSucceedIsPermanent(t *testing.T) {
	want(t, bounce.Classify(553, "5.7.2", "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed."), bounce.Permanent, bounce.Blocklisted)
}

func TestRateLimitingIsTemporaryEvenUnder5xx(t *testing.T) {
	want(t, bounce.Classify(550, "5.7.28", "There is an unusual rate of unsolicited mail originating from your IP address."), bounce.Temporary, bounce.RateLimited)
	want(t, bounce.Classify(550, "5.4.5", "Daily user sending quota exceeded."), bounce.Temporary, bounce.RateLimited)
	want(t, bounce.Classify(554, "", "Throttling failure: Maximum sending rate exceeded"), bounce.Temporary, bounce.RateLimited)
	want(t, bounce.Classify(552, "5.5.3", "Too many recipients"), bounce.Temporary, bounce.RateLimited)
}

func TestGreylistingIsTemporary(t *testing.T) {
	want(t, bounce.Classify(450, "4.2.0", "<bob@example.org>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.org.html"), bounce.Temporary, bounce.Greylisted)
	want(t, bounce.Classify(451, "", "Please try again in 5 minutes"), bounce.Temporary, bounce.Greylisted)
	want(t, bounce.Classify(550, "", "Graylisted, come back later"), bounce.Temporary, bounce.Greylisted)
}

func TestBadUpstreamCredentialsAreTemporarySoMessagesWaitForTheOperator(t *testing.T) {
	want(t, bounce.Classify(535, "5.7.8", "Username and Password not accepted."), bounce.Temporary, bounce.UpstreamAuth)
	want(t, bounce.Classify(535, "", "Authentication failed"), bounce.Temporary, bounce.UpstreamAuth)
	want(t, bounce.Classify(530, "5.7.0", "Authentication Required."), bounce.Temporary, bounce.UpstreamAuth)
	want(t, bounce.Classify(550, "", "Authentication is required for relay"), bounce.Temporary, bounce.UpstreamAuth)
}

func TestRecipientsOrganisationRequiringAuthIsPolicyNotOurCredentials(t *testing.T) {
	want(t, bounce.Classify(550, "5.7.1", "RESOLVER.RST.AuthRequired; authentication required"), bounce.Permanent, bounce.Policy)
}

func TestUnknownUserIsPermanent(t *testing.T) {
	want(t, bounce.Classify(550, "5.1.1", "The email account that you tried to reach does not exist."), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(550, "", "No Such User Here"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"), bounce.Permanent, bounce.UnknownUser)
}

func TestUnknownDomainIsPermanentUnder5xxAndTemporaryUnder4xx(t *testing.T) {
	want(t, bounce.Classify(550, "5.1.2", "Domain not found"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(450, "4.1.2", "Domain not found"), bounce.Temporary, bounce.UnknownDomain)
	want(t, bounce.Classify(550, "5.1.10", "Recipient address has null MX"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(550, "", "Unrouteable address"), bounce.Permanent, bounce.UnknownDomain)
}

func TestRelayDeniedIsPermanentPolicy(t *testing.T) {
	want(t, bounce.Classify(550, "5.7.1", "Unable to relay; not permitted to relay through this server"), bounce.Permanent, bounce.Policy)
	want(t, bounce.Classify(554, "5.7.1", "<bob@example.org>: Relay access denied"), bounce.Permanent, bounce.Policy)
}

func TestSenderAuthenticationFailureIsPolicyWithTheReplysClass(t *testing.T) {
	want(t, bounce.Classify(550, "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy."), bounce.Permanent, bounce.Policy)
	want(t, bounce.Classify(421, "4.7.26", "This mail has been rate limited because it is unauthenticated."), bounce.Temporary, bounce.Policy)
	want(t, bounce.Classify(550, "5.7.23", "The message was rejected because of Sender Policy Framework violation"), bounce.Permanent, bounce.Policy)
}

func TestSpamContentIsPermanent(t *testing.T) {
	want(t, bounce.Classify(554, "", "Message rejected: spam detected"), bounce.Permanent, bounce.SpamContent)
	want(t, bounce.Classify(554, "5.7.1", "Message content rejected"), bounce.Permanent, bounce.SpamContent)
}

func TestMessageTooLargeIsPermanentEvenUnder4xx(t *testing.T) {
	want(t, bounce.Classify(552, "5.3.4", "Message size exceeds fixed limit"), bounce.Permanent, bounce.MessageTooLarge)
	want(t, bounce.Classify(452, "4.3.4", "Message too big for system"), bounce.Permanent, bounce.MessageTooLarge)
	want(t, bounce.Classify(552, "", "Message size exceeds maximum permitted"), bounce.Permanent, bounce.MessageTooLarge)
}

func TestNetworkStatusIsTemporaryEvenUnder5xx(t *testing.T) {
	want(t, bounce.Classify(554, "5.4.0", "Other network problem"), bounce.Temporary, bounce.Network)
}

func TestReplyCodeDecidesWhenNothingElseDoes(t *testing.T) {
	want(t, bounce.Classify(451, "", "Something odd happened"), bounce.Temporary, bounce.Other)
	want(t, bounce.Classify(554, "", "Something odd happened"), bounce.Permanent, bounce.Other)
	// No reply code: the enhanced code's class decides.
	want(t, bounce.Classify(0, "5.0.0", "Something odd happened"), bounce.Permanent, bounce.Other)
}

func TestReplyCodeOutranksTheEnhancedCodesClass(t *testing.T) {
	// RFC 5321 clients act on the reply code; a 4xx with a 5.x.x is still
	// temporary.
	want(t, bounce.Classify(450, "5.1.1", "User unknown"), bounce.Temporary, bounce.UnknownUser)
}

func TestTryAgainLaterMakesA5xxTemporary(t *testing.T) {
	// A locked account is unknown-user (the specific text outranks the
	// generic 5.7.1); the words make it temporary all the same.
	want(t, bounce.Classify(550, "5.7.1", "<bob@example.org>: Recipient address rejected: User bob temporary locked. Please try again later!"), bounce.Temporary, bounce.UnknownUser)
	want(t, bounce.Classify(554, "", "Transaction failed, try again later"), bounce.Temporary, bounce.Other)
}

func TestNothingToGoOnIsTemporary(t *testing.T) {
	want(t, bounce.Classify(0, "", ""), bounce.Temporary, bounce.Other)
	want(t, bounce.Classify(0, "", "something nobody has seen before"), bounce.Temporary, bounce.Other)
	want(t, bounce.Classify(250, "2.0.0", "OK"), bounce.Temporary, bounce.Other)
}

func TestCodesAreReadFromTheTextWhenNotGiven(t *testing.T) {
	// As a log line or a *textproto.Error message would carry them.
	want(t, bounce.Classify(0, "", "550-5.1.1 The email account that you tried to reach does not exist."), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(0, "", "452 4.2.2 Mailbox full"), bounce.Temporary, bounce.MailboxFull)
	want(t, bounce.Classify(550, "", "5.1.1 <bob@example.org>: Recipient address rejected"), bounce.Permanent, bounce.UnknownUser)
	v := bounce.Classify(0, "", "550 5.1.1 user unknown")
	if v.Status != "5.1.1" {
		t.Errorf("status %q, want the 5.1.1 from the text", v.Status)
	}
}

func TestMultiLineRepliesAreJudgedWhole(t *testing.T) {
	text := "The email account that you tried to reach does not exist. Please try\ndouble-checking the recipient's email address for typos or\nunnecessary spaces."
	want(t, bounce.Classify(550, "5.1.1", text), bounce.Permanent, bounce.UnknownUser)
}

func TestVerdictStatusAgreesWithItsClass(t *testing.T) {
	for _, c := range []struct {
		code           int
		enhanced, text string
		status         string
	}{
		{550, "5.1.1", "user unknown", "5.1.1"},
		{552, "5.2.2", "mailbox full", "4.2.2"}, // judged temporary
		{550, "5.7.1", "blocked using Spamhaus", "4.7.1"},
		{550, "", "user unknown", "5.1.1"}, // derived from the category
		{454, "", "Throttling failure: Maximum sending rate exceeded", "4.4.5"},
		{0, "", "dial tcp 192.0.2.1:25: connect: connection refused", "4.4.1"},
		{535, "", "Authentication failed", "4.7.8"},
		{554, "", "Transaction failed", "5.0.0"},
	} {
		if v := bounce.Classify(c.code, c.enhanced, c.text); v.Status != c.status {
			t.Errorf("Classify(%d, %q, %q).Status = %q, want %q", c.code, c.enhanced, c.text, v.Status, c.status)
		}
	}
}

func TestExplanationIsOneLineAndPromisesARetryOnlyWhenTemporary(t *testing.T) {
	for _, row := range readCorpus(t) {
		v := bounce.Classify(row.code, row.enhanced, row.text)
		if v.Explanation == "" || strings.ContainsAny(v.Explanation, "\t\r\n") {
			t.Errorf("replies.tsv:%d: explanation %q", row.line, v.Explanation)
		}
		if retry := strings.HasSuffix(v.Explanation, "; will retry"); retry != (v.Class == bounce.Temporary) {
			t.Errorf("replies.tsv:%d: %s verdict explained %q", row.line, v.Class, v.Explanation)
		}
	}
	if got := bounce.Classify(452, "4.2.2", "over quota").Explanation; got != "the recipient's mailbox is full; will retry" {
		t.Errorf("mailbox full explained %q", got)
	}
	if got := bounce.Classify(550, "5.1.1", "no such user").Explanation; got != "the recipient address does not exist" {
		t.Errorf("unknown user explained %q", got)
	}
}

func TestClassString(t *testing.T) {
	if bounce.Temporary.String() != "temporary" || bounce.Permanent.String() != "permanent" {
		t.Errorf("got %q and %q", bounce.Temporary, bounce.Permanent)
	}
	if got := bounce.Class(7).String(); got != "Class(7)" {
		t.Errorf("Class(7).String() = %q", got)
	}
}

func TestCategoryValid(t *testing.T) {
	if !bounce.MailboxFull.Valid() || bounce.Category("full").Valid() {
		t.Error("Valid accepts the wrong categories")
	}
}

func TestEnhancedCodeInsideTheTextIsRead(t *testing.T) {
	// A sending MTA's own words: no reply code, the code in the text.
	v := bounce.Classify(0, "", "Sorry, no mailbox here by that name. (#5.1.1)")
	want(t, v, bounce.Permanent, bounce.UnknownUser)
	if v.Status != "5.1.1" {
		t.Errorf("status %q, want the 5.1.1 from the text", v.Status)
	}
	want(t, bounce.Classify(0, "", "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(0, "", "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)"), bounce.Temporary, bounce.Network)
	// A relay that quotes the next hop after a generic 5.0.0.
	if v := bounce.Classify(550, "5.0.0", "-5.1.1 The email account that you tried to reach does not exist."); v.Status != "5.1.1" {
		t.Errorf("status %q, want the 5.1.1 that follows the generic code", v.Status)
	}
	// Addresses, versions and Yahoo's "4.16.55.1" are not status codes.
	for _, text := range []string{
		"Messages from 192.0.2.25 deferred - 4.16.55.1",
		"Resources temporarily unavailable [#4.16.5]",
		"greeting from mx.example.org (Exim 4.94.2)",
	} {
		if v := bounce.Classify(0, "", text); strings.Contains(text, v.Status) {
			t.Errorf("Classify(%q).Status = %q: a number in the text was taken for a status code", text, v.Status)
		}
	}
}

func TestMTAsOwnWordsThatAMailboxOrHostDoesNotExistArePermanent(t *testing.T) {
	// No reply code and no enhanced code: the sending MTA gave its verdict.
	want(t, bounce.Classify(0, "", "Unknown user"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(0, "", "User John Doe (bob@example.org) not listed in Domino Directory"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(0, "", "all relevant MX records point to non-existent hosts"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(0, "", "retry timeout exceeded"), bounce.Permanent, bounce.Network)
	want(t, bounce.Classify(0, "", "I'm not going to try again; this message has been in the queue too long."), bounce.Permanent, bounce.Network)
	// Under a 4xx the same words are retried.
	want(t, bounce.Classify(450, "", "user path no exist"), bounce.Temporary, bounce.UnknownUser)
}

func TestSpecificTextOutranksAGenericEnhancedCode(t *testing.T) {
	want(t, bounce.Classify(550, "5.7.1", "No such user! 5a6f3c1b"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(540, "5.7.1", "<bob@example.org>: recipient address rejected: Inactive"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(550, "5.2.0", "No such mailbox: <bob@example.org>"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(550, "5.7.1", "Requested action not taken: mailbox not available"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(550, "", "Mailbox is frozen. See https://help.mail.ru/mail/mailer/popup_freeze"), bounce.Permanent, bounce.UnknownUser)
	// Gmail's DMARC refusal under a mailbox code, Yahoo's under a crypto code.
	want(t, bounce.Classify(521, "5.2.1", "This message failed DMARC Evaluation and is being refused due to provided DMARC Policy"), bounce.Permanent, bounce.Policy)
	want(t, bounce.Classify(554, "5.7.5", "Permanent error evaluating DMARC policy"), bounce.Permanent, bounce.Policy)
}

func TestNullMXOfTheRecipientIsUnknownDomainAndOfTheSenderPolicy(t *testing.T) {
	// RFC 7505 section 4.2 and 4.3.
	want(t, bounce.Classify(556, "5.1.10", "<bob@example.org>: Recipient address rejected: Domain example.org does not accept mail (nullMX)"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(553, "5.7.27", "<alice@example.com>: Sender address rejected: Domain example.com does not accept mail (nullMX)"), bounce.Permanent, bounce.Policy)
}

// The sender's null MX is no failed SPF, DKIM or DMARC check: the sender's
// own domain says in DNS that it takes no mail, and only its DNS can fix
// that. The explanation must say so, whether the code or the words tell.
func TestSendersNullMXIsExplainedAsTheSendersDNS(t *testing.T) {
	for _, v := range []bounce.Verdict{
		bounce.Classify(550, "5.7.27", "Sender address has null MX"),
		bounce.Classify(550, "", "5.7.27 Sender address has null MX"),
		bounce.Classify(553, "5.7.27", "<alice@example.com>: Sender address rejected: Domain example.com does not accept mail (nullMX)"),
		bounce.Classify(550, "", "<alice@example.com>: sender domain publishes a null MX record"),
	} {
		want(t, v, bounce.Permanent, bounce.Policy)
		if !strings.Contains(v.Explanation, "null MX (RFC 7505)") || !strings.Contains(v.Explanation, "sender domain's DNS") {
			t.Errorf("explanation %q does not name the sender's null MX and its DNS", v.Explanation)
		}
		if strings.Contains(v.Explanation, "SPF") {
			t.Errorf("explanation %q blames sender authentication", v.Explanation)
		}
	}
	// The recipient's null MX keeps its own explanation.
	if got := bounce.Classify(556, "5.1.10", "Recipient address has null MX").Explanation; got != "the recipient's domain does not accept mail (null MX)" {
		t.Errorf("recipient's null MX explained %q", got)
	}
	// Gmail sends SPF failures as x.7.27 too; the words about SPF decide.
	if got := bounce.Classify(550, "5.7.27", "This message was blocked because it didn't pass SPF authentication.").Explanation; !strings.Contains(got, "SPF") {
		t.Errorf("Gmail's SPF failure under 5.7.27 explained %q", got)
	}
	// Other sender-authentication codes still speak of SPF, DKIM and DMARC.
	if got := bounce.Classify(550, "5.7.26", "Multiple authentication checks failed").Explanation; !strings.Contains(got, "SPF") {
		t.Errorf("5.7.26 explained %q", got)
	}
}

func TestNotInRecipientListIsUnknownUser(t *testing.T) {
	want(t, bounce.Classify(550, "5.0.0", "not in recipient list"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(550, "5.0.0", "<bob@example.org>... not in recipient list"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(550, "5.7.1", "bob@example.org is not on our valid recipients list"), bounce.Permanent, bounce.UnknownUser)
	want(t, bounce.Classify(450, "4.0.0", "not in the recipient list"), bounce.Temporary, bounce.UnknownUser)
	// No code at all: an MTA's own words that the address is unknown are final.
	want(t, bounce.Classify(0, "", "bob@example.org: not in recipient list"), bounce.Permanent, bounce.UnknownUser)
	// The sender's address on a list is not the recipient's.
	want(t, bounce.Classify(550, "5.7.1", "Sender address rejected: not in recipient list"), bounce.Permanent, bounce.Policy)
}

func TestNoDomainStatusWordIsUnknownDomain(t *testing.T) {
	want(t, bounce.Classify(550, "5.0.0", "NO-DOMAIN"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(550, "", "5.0.0 NO-DOMAIN"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(554, "5.0.0", "example.org: NO_DOMAIN"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(550, "", "(NO-DOMAIN)"), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(0, "", "delivery failed: NO-DOMAIN."), bounce.Permanent, bounce.UnknownDomain)
	want(t, bounce.Classify(451, "4.0.0", "NO-DOMAIN"), bounce.Temporary, bounce.UnknownDomain)
	// The word inside a host name or a longer word says nothing about the
	// recipient's domain.
	for _, text := range []string{
		"mx.no-domain.example.net: service unavailable",
		"no-domain.example.net: service unavailable",
		"no-domain-check failed",
		"nodomain",
	} {
		if v := bounce.Classify(550, "5.0.0", text); v.Category == bounce.UnknownDomain {
			t.Errorf("%q: got %s, want anything but unknown-domain", text, v.Category)
		}
	}
}

// "This account has been blocked" does not say whose account: the sender's
// (a provider stopping an abusive sender) or the recipient's (a suspended
// mailbox). Neither reading is clear enough for a rule, so it stays policy;
// under a 5xx either reading is final, so only the category is at stake.
func TestAccountBlockedStaysPolicy(t *testing.T) {
	want(t, bounce.Classify(550, "5.7.1", "This account has been blocked"), bounce.Permanent, bounce.Policy)
}

func TestFrequencyLimitsSentAs5xxAreRetried(t *testing.T) {
	want(t, bounce.Classify(550, "", "Connection frequency limited"), bounce.Temporary, bounce.RateLimited)
	want(t, bounce.Classify(550, "", "MI:STC 163 mx3,QMCowEBXd1pMnL5j http://mail.163.com/help/help_spam_16.htm?ip=192.0.2.25"), bounce.Temporary, bounce.RateLimited)
	want(t, bounce.Classify(550, "5.2.121", "Recipient's per hour message receive limit from specific sender exceeded"), bounce.Temporary, bounce.RateLimited)
	// Microsoft's sending quota comes as 5.2.2, which is otherwise a full mailbox.
	want(t, bounce.Classify(554, "5.2.2", "Submission quota exceeded"), bounce.Temporary, bounce.RateLimited)
}

func TestSizeLimitIsMessageTooLargeNotRateLimited(t *testing.T) {
	want(t, bounce.Classify(552, "", "Requested mail action aborted: exceeded mailsize limit"), bounce.Permanent, bounce.MessageTooLarge)
	want(t, bounce.Classify(0, "5.3.4", "message size 15728640 exceeds size limit 10240000 of server mx.example.org[192.0.2.1]"), bounce.Permanent, bounce.MessageTooLarge)
}

func TestFormatRefusalsArePolicyNotSpam(t *testing.T) {
	want(t, bounce.Classify(550, "5.7.1", "This message is not RFC 5322 compliant because it has duplicate headers. To reduce the amount of spam sent to Gmail, this message has been blocked."), bounce.Permanent, bounce.Policy)
	want(t, bounce.Classify(554, "5.6.0", "Mail message is malformed. Not accepted."), bounce.Permanent, bounce.Policy)
	want(t, bounce.Classify(550, "5.6.11", "SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds, which cannot be sent via DATA"), bounce.Permanent, bounce.Policy)
}

func TestProvidersBlockCodesAreBlocklisted(t *testing.T) {
	want(t, bounce.Classify(554, "", "resimta-po-01v.sys.comcast.net comcast 192.0.2.25 Comcast block for spam. Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000"), bounce.Temporary, bounce.Blocklisted)
	want(t, bounce.Classify(550, "5.7.507", "Access denied, rejected by recipient"), bounce.Temporary, bounce.Blocklisted)
	want(t, bounce.Classify(554, "", "(RTR:BL) http://postmaster.info.aol.com/errors/554rtrbl.html"), bounce.Temporary, bounce.Blocklisted)
}

func TestRelayDenialsAndSenderRejectionsArePolicy(t *testing.T) {
	want(t, bounce.Classify(553, "", "sorry, that domain isn't in my list of allowed rcpthosts (#5.5.3 - chkuser)"), bounce.Permanent, bounce.Policy)
	want(t, bounce.Classify(550, "", "Error: MAIL FROM is mismatched with message header from address!"), bounce.Permanent, bounce.Policy)
}
