// Package bounce decides what a delivery failure means and tells the sender
// about it: it classifies upstream replies and delivery errors as temporary or
// permanent, and composes RFC 3464 delivery status notifications. It does no
// I/O; every function is pure, so delivery, the CLI and the admin API can share
// it and tests can pin its behaviour down exactly.
//
// # Classification
//
// [Classify] judges one SMTP reply (reply code, enhanced status code, text),
// [ClassifyError] any error a delivery attempt can produce, and
// [ClassifyLines] a batch of replies for `outbound bounce classify`. A
// [Verdict] carries a [Class] (retry or give up), a [Category] (why) and a
// one-line explanation for humans.
//
// The rules live in one ordered table (rules.go); the first rule whose
// conditions (enhanced code pattern, reply code pattern, phrases) all hold
// decides the category. The enhanced status code is the best evidence, then
// the reply code, then the text; but the order of the table also lets a
// specific text beat a generic code ("550 5.7.1 ... blocked using Spamhaus"
// is a blocklist hit, not a policy refusal):
//
//  1. Phrases that settle the matter whatever the codes say: Yahoo's
//     "Retrying will NOT succeed", Gmail's full and inactive mailbox, mail
//     loops, Microsoft's 5.1.10 "RecipientNotFound" (the registry would read
//     5.1.10 as a null MX).
//  2. Our own session with the upstream: bad credentials (535, 534, 530,
//     x.7.8, "Authentication required") are upstream-auth, handshake and
//     certificate failures and "STARTTLS required" are tls. Both are
//     TEMPORARY: they are the operator's misconfiguration, which gets fixed,
//     and a message should wait for the fix rather than bounce.
//  3. Sender authentication (SPF, DKIM, DMARC; x.7.23-x.7.27 and Gmail's
//     x.7.30/32/40) is policy.
//  4. Unambiguous enhanced codes: x.3.4 and x.2.3 message-too-large (always
//     permanent: the same message never gets smaller), x.2.2 mailbox-full
//     (temporary even as 5.2.2), x.7.28 (Gmail), 4.7.500-699 and x.7.650
//     (Microsoft) and x.5.3 (too many recipients) rate-limited.
//  5. Phrases for what clears by itself, even under a 5xx code: a full
//     mailbox, greylisting ("greylist", "try again in 5 minutes"), rate
//     limiting ("too many", "throttl", "rate limit", "exceeded ... limit"),
//     blocklists (Spamhaus, "blocked using", RBLs, Barracuda, SpamCop,
//     Outlook's S3150, "banned sending IP", bad reputation); and size phrases.
//  6. Spam and content rejections (permanent under 5xx), then relay and
//     sender rejections.
//  7. The enhanced status code by the RFC 3463 / RFC 5248 registry: x.1.1
//     unknown-user, x.1.2 and x.1.10 unknown-domain, x.4.4 no route to the
//     domain, any other x.4.x network (always temporary), x.7.x policy.
//  8. Phrases for replies without a useful enhanced code (Exim's
//     "Unrouteable address", Yahoo's "This user doesn't have a ... account",
//     RFC 5321's "mailbox unavailable" under 5xx), and Go's network error
//     texts (connection refused, i/o timeout, EOF), always temporary.
//  9. The reply code alone.
//
// Unless the deciding rule fixes the class, the class comes from the reply
// code (the code is what RFC 5321 obliges a client to act on; the enhanced
// code only refines the reason), or from the enhanced code's class when there
// is no reply code. Words like "try again later" or "temporarily" make such a
// verdict temporary even under a 5xx, and anything we cannot judge is
// temporary: retrying a permanent failure costs a few attempts, bouncing a
// temporary one loses mail.
//
// # Notifications
//
// [Compose] builds a complete multipart/report message (RFC 6522) with a
// human-readable part quoting each upstream reply, a message/delivery-status
// part (RFC 3464) and the original message or its headers (RFC 3461 RET).
// Every value that reaches a header is stripped of CR, LF and other control
// characters, so nothing a client or an upstream sends can inject a header;
// long fields are folded so no line exceeds 998 octets.
package bounce
