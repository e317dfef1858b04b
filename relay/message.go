package relay

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"net/textproto"
)

// readMessage reads DATA whole. A buffer sized from the client's SIZE=
// declaration (bounded by the limit, as the declaration is only a promise)
// spares the copies of a growing slice for large messages.
func readMessage(r io.Reader, declared, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if declared > 0 {
		buf.Grow(int(min(declared, limit)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// normalizeLineEndings rewrites every bare CR and bare LF to CRLF and
// reports whether it found any. go-smtp hands DATA to the backend verbatim;
// forwarding a bare LF lets an upstream that treats "\n.\n" as the end of
// data see a second, smuggled message. After this, the only line ending in
// the body is CRLF, and the delivery side dot-stuffs every line that starts
// with ".", so what one client sent stays one message.
func normalizeLineEndings(b []byte) ([]byte, bool) {
	bare := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
				continue
			}
			bare = true
		case '\n':
			bare = true
		}
		if bare {
			break
		}
	}
	if !bare {
		return b, false
	}
	out := make([]byte, 0, len(b)+len(b)/64)
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
	return out, true
}

// splitHeader returns the header block (without the blank line) and the
// rest of the message. A message without a blank line is all header.
func splitHeader(msg []byte) (header, body []byte) {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return nil, msg[2:]
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2], msg[i+4:]
	}
	return msg, nil
}

// parseHeader parses a header block as RFC 5322 fields.
func parseHeader(header []byte) (textproto.MIMEHeader, error) {
	// ReadMIMEHeader needs the terminating blank line splitHeader removed.
	withBlank := make([]byte, 0, len(header)+2)
	withBlank = append(append(withBlank, header...), '\r', '\n')
	return textproto.NewReader(bufio.NewReader(bytes.NewReader(withBlank))).ReadMIMEHeader()
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
