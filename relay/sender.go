package relay

import (
	"bytes"
	"net/mail"
	"strings"

	"outbound/auth"
)

// maxFoldedLine is the length past which a rewritten From field is folded
// (RFC 5322 section 2.1.1 recommends 78 characters).
const maxFoldedLine = 78

// applySenderDefaults fills in the user's sender settings where the client
// left them out, and returns the message to queue:
//
//   - with a DisplayName, a message whose From header holds exactly one
//     address and no display name gets that From field rewritten to
//     "Display Name" <addr> (RFC 2047-encoded when not ASCII);
//   - with a ReplyTo, a message without a Reply-To field gets one, added at
//     the end of the header.
//
// It never replaces what the client set, and leaves alone messages that
// carry a DKIM-Signature: the client signed its From, and changing it
// would break the signature. Every other byte of the header and body is
// kept; when nothing applies, msg itself is returned.
//
// msg has CRLF line endings (normalizeLineEndings ran) and header is its
// parsed header. The session calls this after checking that the user may
// send as every From address, so the address is never changed, only named.
func applySenderDefaults(msg []byte, header header, u *auth.User) []byte {
	headerBlock, _ := splitHeader(msg)
	newHeader := senderDefaultsHeader(headerBlock, header, u)
	if newHeader == nil {
		return msg
	}
	out := make([]byte, 0, len(newHeader)+len(msg)-len(headerBlock))
	return append(append(out, newHeader...), msg[len(headerBlock):]...)
}

// senderDefaultsHeader is applySenderDefaults on the header block alone
// (the session puts it in front of the body itself, sparing a copy of the
// message): the new header block, or nil when nothing applies.
func senderDefaultsHeader(headerBlock []byte, header header, u *auth.User) []byte {
	if u == nil || (u.DisplayName == "" && u.ReplyTo == "") || len(header.Values("DKIM-Signature")) > 0 || len(headerBlock) == 0 {
		return nil
	}

	var newFrom []byte
	fromStart, fromEnd := -1, -1
	if fields := header.fields("From"); u.DisplayName != "" && len(fields) == 1 {
		froms, err := headerAddresses([]string{fields[0].value})
		// A group ("Team: a@example.com;") has a name of its own.
		group := strings.HasSuffix(fields[0].value, ";")
		if err == nil && len(froms) == 1 && froms[0].Name == "" && !group {
			fromStart, fromEnd = fields[0].start, fields[0].end
			newFrom = formatFrom(fields[0].name, u.DisplayName, froms[0].Address)
		}
	}

	// A header block that does not end its last line (a message of header
	// only, without a final CRLF) gets no field after it, unless the From
	// rewritten last ended it.
	ended := bytes.HasSuffix(headerBlock, []byte("\r\n")) || (newFrom != nil && fromEnd == len(headerBlock))
	var replyTo []byte
	if u.ReplyTo != "" && len(header.Values("Reply-To")) == 0 && ended {
		if a, err := mail.ParseAddress(u.ReplyTo); err == nil {
			v := a.Address
			if a.Name != "" {
				v = a.String()
			}
			replyTo = []byte("Reply-To: " + v + "\r\n")
		}
	}

	if newFrom == nil && replyTo == nil {
		return nil
	}
	out := make([]byte, 0, len(headerBlock)+len(newFrom)+len(replyTo))
	if newFrom != nil {
		out = append(out, headerBlock[:fromStart]...)
		out = append(out, newFrom...)
		out = append(out, headerBlock[fromEnd:]...)
	} else {
		out = append(out, headerBlock...)
	}
	return append(out, replyTo...)
}

// formatFrom returns the From field "<fieldName>: <display name> <addr>\r\n",
// the name quoted or RFC 2047-encoded by net/mail. A long encoded name is
// folded before each of its encoded-words, which never contain white space.
func formatFrom(fieldName, displayName, addr string) []byte {
	full := (&mail.Address{Name: displayName, Address: addr}).String()
	angle := (&mail.Address{Address: addr}).String()
	encodedName := strings.TrimSuffix(full, " "+angle)
	line := fieldName + ": " + full
	if len(line) > maxFoldedLine && strings.HasPrefix(encodedName, "=?") && encodedName != full {
		// Each encoded-word on a line of its own, as RFC 2047 section 2
		// asks (encoded-words of up to 75 characters, lines of up to 76).
		line = fieldName + ":\r\n " + strings.ReplaceAll(encodedName, " ", "\r\n ") + "\r\n " + angle
	}
	return []byte(line + "\r\n")
}
