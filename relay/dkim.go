package relay

import (
	"strings"
)

// Signer DKIM-signs messages for their From domain (package dkim's
// Store). Sign returns the DKIM-Signature fields to put in front of msg,
// nil when the domain has no key; rewritten names the header fields the
// route's upstream replaces, which the signature must leave out.
type Signer interface {
	Sign(domain string, msg []byte, rewritten []string) ([]byte, error)
}

// sign puts the signatures of the header From's domain in front of the
// message as queued: after every change the relay makes (its own
// headers, the sender defaults, long lines re-encoded), so nothing the
// relay does afterwards can break them. A message the client already
// signed for that domain is left as it is: the domain's owner signed it
// (and the relay changed nothing in it, see senderDefaults and
// rewriteLongLines). The first From address decides when there are
// several (RFC 5322 then requires a Sender, but DMARC looks at From).
func (s *session) sign(pm *parsedMessage, queued *heldBuffer) *reply {
	signer := s.b.opts.Signer
	froms := pm.fromAddresses()
	if signer == nil || len(froms) == 0 {
		return nil
	}
	domain := domainOf(froms[0].Address)
	if signedFor(pm.header.Values("DKIM-Signature"), domain) {
		return nil
	}
	sig, err := signer.Sign(domain, queued.b, s.policy.Rewrites)
	if err != nil {
		// Sent unsigned, the message could fail DMARC and be refused or
		// filed as spam where the domain asks for it; the client keeps it
		// and retries while the operator fixes the key.
		s.b.log.Error("dkim signing failed", "user", s.user.Name, "domain", domain, "err", err)
		return errTemporary
	}
	if len(sig) == 0 {
		return nil
	}
	if err := queued.prepend(sig); err != nil {
		return s.bufferReply(err)
	}
	return nil
}

// signedFor says whether one of the DKIM-Signature field values has
// d=domain.
func signedFor(values []string, domain string) bool {
	for _, v := range values {
		for _, tag := range strings.Split(v, ";") {
			name, val, ok := strings.Cut(tag, "=")
			if ok && strings.TrimSpace(name) == "d" {
				d := strings.Join(strings.Fields(val), "")
				if strings.EqualFold(strings.TrimSuffix(d, "."), domain) {
					return true
				}
			}
		}
	}
	return false
}
