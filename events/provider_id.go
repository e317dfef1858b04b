package events

import "strings"

// ParseProviderID returns the provider's message id from an upstream's 250
// reply to DATA, or "" when the reply gives none. Providers' webhooks name
// messages by it, so it is kept with the relayed event. The forms known:
//
//	250 2.0.0 Ok: queued as 4BQk2x1zZ3z9     Postfix, SendGrid, Postmark
//	250 Ok 0100018f7c1d-...-000000           Amazon SES
//	250 Great success                        Mailgun: none (it reports by Message-ID)
func ParseProviderID(reply string) string {
	text := strings.TrimSpace(reply)
	if !strings.HasPrefix(text, "250") {
		return ""
	}
	text = strings.TrimSpace(strings.TrimPrefix(text, "250"))
	text = strings.TrimPrefix(text, "-")
	// The enhanced status code, when there is one.
	if f := strings.Fields(text); len(f) > 0 && strings.Count(f[0], ".") == 2 && f[0][0] == '2' {
		text = strings.TrimSpace(text[len(f[0]):])
	}
	lower := strings.ToLower(text)
	if i := strings.Index(lower, "queued as "); i >= 0 {
		return token(text[i+len("queued as "):])
	}
	// SES: "Ok <id>", the id a single long token.
	if f := strings.Fields(text); len(f) == 2 && strings.EqualFold(f[0], "ok") && len(token(f[1])) >= 8 {
		return token(f[1])
	}
	return ""
}

// token is the first word of s without surrounding brackets or punctuation.
func token(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return strings.Trim(f[0], "<>[]()\"',.;:")
}
