package relay

import (
	"bytes"
	"io"
	"net/mail"
	"strings"
)

// readMessage reads DATA whole into buf. A SIZE= declaration sizes the
// buffer up front, to spare the copies of a growing slice, but only as far
// as the in-flight budget grants it then: the declaration is a promise, and
// no memory is set aside for bytes that have not arrived. Past that the
// buffer grows as bytes come, each step taken from the budget.
func readMessage(r io.Reader, declared int64, buf *heldBuffer) error {
	if declared > 0 {
		if buf.max > 0 {
			declared = min(declared, int64(buf.max))
		}
		// Refused: grow as bytes arrive, as without a declaration.
		_ = buf.reserve(int(min(declared, 1<<31-1)))
	}
	for {
		if len(buf.b) == cap(buf.b) {
			// Full: learn whether anything follows before growing.
			var probe [1]byte
			n, err := r.Read(probe[:])
			if n > 0 {
				if err := buf.reserve(1); err != nil {
					return err
				}
				buf.b = append(buf.b, probe[0])
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			continue
		}
		n, err := r.Read(buf.b[len(buf.b):cap(buf.b)])
		buf.b = buf.b[:len(buf.b)+n]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// bareLineEndings counts the bare CRs and bare LFs in b: each becomes two
// bytes when normalized.
func bareLineEndings(b []byte) int {
	n := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
				continue
			}
			n++
		case '\n':
			n++
		}
	}
	return n
}

// normalizeLineEndings rewrites every bare CR and bare LF to CRLF and
// reports whether it found any. go-smtp hands DATA to the backend verbatim;
// forwarding a bare LF lets an upstream that treats "\n.\n" as the end of
// data see a second, smuggled message. After this, the only line ending in
// the body is CRLF, and the delivery side dot-stuffs every line that starts
// with ".", so what one client sent stays one message.
func normalizeLineEndings(b []byte) ([]byte, bool) {
	n := bareLineEndings(b)
	if n == 0 {
		return b, false
	}
	return appendNormalized(make([]byte, 0, len(b)+n), b), true
}

// appendNormalized appends b to out with every bare CR and LF as CRLF.
func appendNormalized(out, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// splitHeader returns the header block (without the blank line) and the
// rest of the message. A message without a blank line is all header. The
// header block is always a prefix of msg.
func splitHeader(msg []byte) (header, body []byte) {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return nil, msg[2:]
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2], msg[i+4:]
	}
	return msg, nil
}

// header is a header block as the relay reads it. Every look-up of a field
// goes through it (From, Sender, Resent-*, Reply-To, DKIM-Signature,
// Message-ID, Date, Content-Transfer-Encoding) and through the same reading
// of field names, so that no check can miss a field another part of the
// relay, or a receiver, would see.
type header []headerField

// headerField is one field of a header block.
type headerField struct {
	// name is the field name as written; names compare case-insensitively.
	name string
	// value is the field body unfolded (every CRLF removed), without the
	// white space around it.
	value string
	// start and end are the field's bytes in the header block, from its
	// name to the CRLF ending its last line, inclusive.
	start, end int
}

// parseHeader reads a header block as RFC 5322 fields (CRLF line endings:
// normalizeLineEndings ran). A field name is one or more printable US-ASCII
// characters other than the colon, directly followed by the colon; anything
// else is refused with a 550 5.6.0 naming the line. In particular "From :"
// (RFC 5322's obsolete syntax, white space before the colon) is refused:
// net/textproto files it under a different name than "From", so the relay's
// checks would pass it while receivers display it as the From field, and no
// legitimate client writes it.
func parseHeader(block []byte) (header, error) {
	var h header
	for pos := 0; pos < len(block); {
		lineEnd := len(block)
		if i := bytes.IndexByte(block[pos:], '\n'); i >= 0 {
			lineEnd = pos + i + 1
		}
		line := bytes.TrimSuffix(bytes.TrimSuffix(block[pos:lineEnd], []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			return nil, errHeaderLineNoColon("")
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h) == 0 {
				return nil, errHeaderStartsFolded
			}
			f := &h[len(h)-1]
			f.value += string(line)
			f.end = lineEnd
			pos = lineEnd
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, errHeaderLineNoColon(string(line))
		}
		name := string(line[:colon])
		if err := checkFieldName(name); err != nil {
			return nil, err
		}
		h = append(h, headerField{name: name, value: string(line[colon+1:]), start: pos, end: lineEnd})
		pos = lineEnd
	}
	for i := range h {
		h[i].value = strings.Trim(h[i].value, " \t")
	}
	return h, nil
}

// checkFieldName refuses a field name RFC 5322 section 2.2 does not allow.
func checkFieldName(name string) error {
	trimmed := strings.TrimRight(name, " \t")
	if trimmed != name && trimmed != "" && strings.IndexFunc(trimmed, isNotFtext) < 0 {
		return errHeaderSpaceBeforeColon(trimmed)
	}
	if name == "" || strings.IndexFunc(name, isNotFtext) >= 0 {
		return errHeaderBadName(name)
	}
	return nil
}

// isNotFtext: RFC 5322 ftext is %d33-57 / %d59-126.
func isNotFtext(r rune) bool { return r < 33 || r > 126 || r == ':' }

// Values returns the values of every field called name, in order.
func (h header) Values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// Get returns the value of the first field called name, or "".
func (h header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

// fields returns every field called name.
func (h header) fields(name string) []headerField {
	var out []headerField
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			out = append(out, f)
		}
	}
	return out
}

// headerAddresses parses the addresses of an address-list header such as
// From, decoding RFC 2047 display names.
func headerAddresses(values []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, v := range values {
		list, err := (&mail.AddressParser{}).ParseList(v)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
	}
	return out, nil
}
