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

// senderDefaults returns the changes that fill in the user's sender
// settings where the client left them out:
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
// kept. The session calls this after checking that the user may send as
// every From address, so the address is never changed, only named.
func senderDefaults(m *parsedMessage, u *auth.User) headerChanges {
	var c headerChanges
	if u == nil || (u.DisplayName == "" && u.ReplyTo == "") || len(m.header.Values("DKIM-Signature")) > 0 || len(m.block) == 0 {
		return c
	}

	fromEnd := -1
	if u.DisplayName != "" && len(m.from) == 1 {
		f := m.from[0]
		// A group ("Team: a@example.com;") has a name of its own.
		group := strings.HasSuffix(f.value, ";")
		if len(f.addrs) == 1 && f.addrs[0].Name == "" && !group {
			c.replace = map[int][]byte{f.start: formatFrom(f.name, u.DisplayName, f.addrs[0].Address)}
			fromEnd = f.end
		}
	}

	// A header block that does not end its last line (a message of header
	// only, without a final CRLF) gets no field after it, unless the From
	// rewritten last ended it.
	ended := bytes.HasSuffix(m.block, []byte("\r\n")) || fromEnd == len(m.block)
	if u.ReplyTo != "" && len(m.header.Values("Reply-To")) == 0 && ended {
		if a, err := mail.ParseAddress(u.ReplyTo); err == nil {
			v := a.Address
			if a.Name != "" {
				v = a.String()
			}
			c.add = []byte("Reply-To: " + v + "\r\n")
		}
	}
	return c
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
