package relay

import (
	"bytes"
	"net/mail"
	"net/textproto"
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
func applySenderDefaults(msg []byte, header textproto.MIMEHeader, u *auth.User) []byte {
	if u == nil || (u.DisplayName == "" && u.ReplyTo == "") || len(header.Values("Dkim-Signature")) > 0 {
		return msg
	}
	headerBlock, _ := splitHeader(msg)
	if len(headerBlock) == 0 {
		return msg
	}

	var newFrom []byte
	fromStart, fromEnd := -1, -1
	if u.DisplayName != "" && len(header.Values("From")) == 1 {
		froms, err := headerAddresses(header.Values("From"))
		// A group ("Team: a@example.com;") has a name of its own.
		group := strings.HasSuffix(strings.TrimSpace(header.Get("From")), ";")
		if err == nil && len(froms) == 1 && froms[0].Name == "" && !group {
			fields := fieldSpans(headerBlock, "From")
			if len(fields) == 1 {
				fromStart, fromEnd = fields[0][0], fields[0][1]
				name := headerBlock[fromStart : fromStart+bytes.IndexByte(headerBlock[fromStart:], ':')]
				newFrom = formatFrom(strings.TrimRight(string(name), " \t"), u.DisplayName, froms[0].Address)
			}
		}
	}

	var replyTo []byte
	if u.ReplyTo != "" && len(header.Values("Reply-To")) == 0 && bytes.HasSuffix(headerBlock, []byte("\r\n")) {
		if a, err := mail.ParseAddress(u.ReplyTo); err == nil {
			v := a.Address
			if a.Name != "" {
				v = a.String()
			}
			replyTo = []byte("Reply-To: " + v + "\r\n")
		}
	}

	if newFrom == nil && replyTo == nil {
		return msg
	}
	end := len(headerBlock) // the header block is a prefix of msg
	out := make([]byte, 0, len(msg)+len(newFrom)+len(replyTo))
	if newFrom != nil {
		out = append(out, msg[:fromStart]...)
		out = append(out, newFrom...)
		out = append(out, msg[fromEnd:end]...)
	} else {
		out = append(out, msg[:end]...)
	}
	out = append(out, replyTo...)
	return append(out, msg[end:]...)
}

// fieldSpans returns the [start, end) byte offsets in a header block of
// each field named name (case-insensitively), each span running from the
// field name to the CRLF ending its last continuation line, inclusive.
func fieldSpans(headerBlock []byte, name string) [][2]int {
	var spans [][2]int
	inField := false
	for pos := 0; pos < len(headerBlock); {
		lineEnd := len(headerBlock)
		if i := bytes.Index(headerBlock[pos:], []byte("\r\n")); i >= 0 {
			lineEnd = pos + i + 2
		}
		line := headerBlock[pos:lineEnd]
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if inField {
				spans[len(spans)-1][1] = lineEnd // a continuation line
			}
		} else {
			colon := bytes.IndexByte(line, ':')
			inField = colon > 0 && strings.EqualFold(strings.TrimRight(string(line[:colon]), " \t"), name)
			if inField {
				spans = append(spans, [2]int{pos, lineEnd})
			}
		}
		pos = lineEnd
	}
	return spans
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
