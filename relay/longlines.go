package relay

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
)

// Lines longer than RFC 5322's 998 octets are common in what applications
// send (HTML written on one line, base64 not wrapped). The relay accepts
// them, up to submission.max_line_length, and rewrites the message so that
// no line leaving it is longer, changing its encoding only, never its
// content:
//
//   - a text part (or a message without MIME) in 7bit, 8bit, binary or no
//     encoding is re-encoded as quoted-printable, or base64 when it is
//     mostly non-ASCII (quoted-printable would triple it); other parts in
//     those encodings as base64; the part's Content-Transfer-Encoding is
//     replaced, and MIME-Version added to a message that had none;
//   - base64 is wrapped at 76 characters, and long quoted-printable lines
//     get soft line breaks (decoders ignore both);
//   - multipart and message/rfc822 parts are walked into, and the parts
//     without long lines are kept byte for byte;
//   - a long header line is folded at white space.
//
// A message that carries a DKIM-Signature is never rewritten: its signer
// signed those bytes (a later issue re-encodes before signing with the
// relay's own key). What cannot be rewritten this way (a header line
// without white space to fold at, a long line in the text around MIME
// parts, an unknown encoding, parts nested too deep) is refused with a
// permanent 550 5.6.0 naming it.

// maxLineOctets is RFC 5322's limit on a line, without its CRLF
// (section 2.1.1).
const maxLineOctets = 998

// maxMIMEDepth bounds how deep multipart and message/rfc822 parts are
// walked into.
const maxMIMEDepth = 20

// encodedLine is the length of a base64 or quoted-printable line written
// here (RFC 2045's 76 characters).
const encodedLine = 76

// hasLongLine reports whether a line of b (CRLF line endings) is longer
// than maxLineOctets octets.
func hasLongLine(b []byte) bool {
	for len(b) > maxLineOctets {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return true
		}
		if i-1 > maxLineOctets { // the line, without its CRLF
			return true
		}
		b = b[i+1:]
	}
	return false
}

// notEncodableError names where a long line could not be re-encoded.
type notEncodableError struct{ where string }

func (e *notEncodableError) Error() string {
	return "relay: cannot re-encode a long line in " + e.where
}

// rewriteLongLines writes m to w so that no line is longer than
// maxLineOctets (see above), with changes (the sender defaults) made to
// its header as it goes: the header is the one the session parsed, and
// its fields are not read again. Errors are w's (the heldBuffer's limit
// and budget) or a *notEncodableError.
func rewriteLongLines(w io.Writer, m *parsedMessage, changes headerChanges) error {
	return rewriteParsed(w, m.block, m.header, m.msg[len(m.block):], 0, true, changes)
}

// rewriteEntity rewrites one MIME part, or a message inside one
// (isMessage): a header, then optionally an empty line and a body.
func rewriteEntity(w io.Writer, ent []byte, depth int, isMessage bool) error {
	if !hasLongLine(ent) {
		_, err := w.Write(ent)
		return err
	}
	headerBlock, _ := splitHeader(ent)
	h, bad := parseHeader(headerBlock)
	if bad != nil {
		return &notEncodableError{"a MIME part header"}
	}
	return rewriteParsed(w, headerBlock, h, ent[len(headerBlock):], depth, isMessage, headerChanges{})
}

// rewriteParsed is rewriteEntity on an entity whose header is parsed (h,
// the fields of headerBlock); rest is what follows the header: the empty
// line and the body, or nothing. changes are made to the header, together
// with the rewrite's own.
func rewriteParsed(w io.Writer, headerBlock []byte, h header, rest []byte, depth int, isMessage bool, changes headerChanges) error {
	newHeader := changes.apply(headerBlock, h)
	if !hasLongLine(rest) {
		return writeFolded(w, newHeader, rest)
	}
	body := bytes.TrimPrefix(rest, []byte("\r\n"))

	ctype := h.Get("Content-Type")
	mediaType, params, err := mime.ParseMediaType(ctype)
	if ctype == "" || err != nil {
		// RFC 2045 section 5.2: no (or an unreadable) Content-Type means
		// plain text, except that a multipart or message whose parameters
		// do not parse cannot be walked into.
		if lower := strings.ToLower(ctype); strings.HasPrefix(lower, "multipart/") || strings.HasPrefix(lower, "message/") {
			return &notEncodableError{fmt.Sprintf("a part of type %.40q", ctype)}
		}
		mediaType = "text/plain"
	}
	cte := strings.ToLower(h.Get("Content-Transfer-Encoding"))
	// The encodings that leave the bytes as they are; the only ones a
	// multipart or message part may have (RFC 2045 section 6.4).
	identity := cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary"
	switch {
	case identity && strings.HasPrefix(mediaType, "multipart/"):
		if depth >= maxMIMEDepth || params["boundary"] == "" {
			return &notEncodableError{"a multipart part nested too deep or without a boundary"}
		}
		if err := writeFolded(w, newHeader, nil); err != nil {
			return err
		}
		return rewriteMultipart(w, rest, params["boundary"], depth)
	case identity && (mediaType == "message/rfc822" || mediaType == "message/global"):
		if depth >= maxMIMEDepth {
			return &notEncodableError{"a message part nested too deep"}
		}
		if err := writeFolded(w, newHeader, []byte("\r\n")); err != nil {
			return err
		}
		return rewriteEntity(w, body, depth+1, true)
	case cte == "base64":
		if err := writeFolded(w, newHeader, []byte("\r\n")); err != nil {
			return err
		}
		return rewrapBase64(w, body)
	case cte == "quoted-printable":
		if err := writeFolded(w, newHeader, []byte("\r\n")); err != nil {
			return err
		}
		return softBreakQuotedPrintable(w, body)
	case identity:
		encoding := "base64"
		if strings.HasPrefix(mediaType, "text/") && cte != "binary" && mostlyASCII(body) {
			encoding = "quoted-printable"
		}
		reencoded := changes.withEncoding(h, encoding, isMessage).apply(headerBlock, h)
		if err := writeFolded(w, reencoded, []byte("\r\n")); err != nil {
			return err
		}
		if encoding == "base64" {
			enc := base64.NewEncoder(base64.StdEncoding, &lineWrapper{w: w})
			if _, err := enc.Write(body); err != nil {
				return err
			}
			if err := enc.Close(); err != nil {
				return err
			}
			_, err := w.Write([]byte("\r\n"))
			return err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write(body); err != nil {
			return err
		}
		return qp.Close()
	}
	return &notEncodableError{fmt.Sprintf("a part with Content-Transfer-Encoding %.20q", cte)}
}

// rewriteMultipart rewrites a multipart body part by part (RFC 2046
// section 5.1.1): the CRLF before a delimiter line belongs to the
// delimiter, not to the part before it.
func rewriteMultipart(w io.Writer, body []byte, boundary string, depth int) error {
	delimiter := []byte("--" + boundary)
	segStart, inPart, closed := 0, false, false
	for pos := 0; pos < len(body); {
		lineEnd := len(body)
		if i := bytes.IndexByte(body[pos:], '\n'); i >= 0 {
			lineEnd = pos + i + 1
		}
		line := bytes.TrimRight(body[pos:lineEnd], " \t\r\n")
		if !closed && bytes.HasPrefix(line, delimiter) {
			rest := line[len(delimiter):]
			if len(rest) == 0 || bytes.Equal(rest, []byte("--")) {
				if err := rewriteSegment(w, body[segStart:pos], inPart, depth); err != nil {
					return err
				}
				if _, err := w.Write(body[pos:lineEnd]); err != nil {
					return err
				}
				closed = len(rest) > 0
				inPart = !closed
				segStart = lineEnd
			}
		}
		pos = lineEnd
	}
	return rewriteSegment(w, body[segStart:], inPart, depth)
}

// rewriteSegment writes what lies between two delimiter lines: a part, or
// the preamble or epilogue (which no reader shows).
func rewriteSegment(w io.Writer, seg []byte, isPart bool, depth int) error {
	if !hasLongLine(seg) {
		_, err := w.Write(seg)
		return err
	}
	if !isPart {
		return &notEncodableError{"the text around the MIME parts"}
	}
	part, crlf := seg, []byte(nil)
	if bytes.HasSuffix(seg, []byte("\r\n")) {
		part, crlf = seg[:len(seg)-2], seg[len(seg)-2:]
	}
	if err := rewriteEntity(w, part, depth+1, false); err != nil {
		return err
	}
	_, err := w.Write(crlf)
	return err
}

// withEncoding returns c and the changes that replace the
// Content-Transfer-Encoding fields of h by one naming encoding, and add
// MIME-Version to a message (not a part) that has none: without it
// receivers ignore the encoding. The new fields come right after the
// header's own, before any c adds.
func (c headerChanges) withEncoding(h header, encoding string, isMessage bool) headerChanges {
	out := headerChanges{replace: make(map[int][]byte, len(c.replace)+1)}
	for start, with := range c.replace {
		out.replace[start] = with
	}
	for _, f := range h.fields("Content-Transfer-Encoding") {
		out.replace[f.start] = nil
	}
	if isMessage && len(h.Values("MIME-Version")) == 0 {
		out.add = append(out.add, "MIME-Version: 1.0\r\n"...)
	}
	out.add = append(out.add, "Content-Transfer-Encoding: "+encoding+"\r\n"...)
	out.add = append(out.add, c.add...)
	return out
}

// writeFolded writes a header block with every line longer than
// maxLineOctets folded before white space (RFC 5322 section 2.2.3), then
// after.
func writeFolded(w io.Writer, headerBlock, after []byte) error {
	if !hasLongLine(headerBlock) {
		if _, err := w.Write(headerBlock); err != nil {
			return err
		}
		_, err := w.Write(after)
		return err
	}
	field := ""
	for pos := 0; pos < len(headerBlock); {
		lineEnd := len(headerBlock)
		if i := bytes.IndexByte(headerBlock[pos:], '\n'); i >= 0 {
			lineEnd = pos + i + 1
		}
		line := bytes.TrimSuffix(headerBlock[pos:lineEnd], []byte("\r\n"))
		eol := headerBlock[pos+len(line) : lineEnd]
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' {
			field = string(line[:max(bytes.IndexByte(line, ':'), 0)])
		}
		for len(line) > maxLineOctets {
			cut := foldPoint(line[:maxLineOctets+1])
			if cut < 0 {
				return &notEncodableError{fmt.Sprintf("the header field %.40q (no white space to fold it at)", field)}
			}
			if _, err := w.Write(line[:cut]); err != nil {
				return err
			}
			if _, err := w.Write([]byte("\r\n")); err != nil {
				return err
			}
			line = line[cut:] // starts with the white space: a continuation
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if _, err := w.Write(eol); err != nil {
			return err
		}
		pos = lineEnd
	}
	_, err := w.Write(after)
	return err
}

// foldPoint returns the index of the last space or tab in line that has
// something other than white space before it, or -1.
func foldPoint(line []byte) int {
	for i := len(line) - 1; i > 0; i-- {
		if line[i] == ' ' || line[i] == '\t' {
			if len(bytes.TrimLeft(line[:i], " \t")) > 0 {
				return i
			}
			return -1
		}
	}
	return -1
}

// rewrapBase64 writes base64 text in lines of encodedLine characters.
func rewrapBase64(w io.Writer, body []byte) error {
	lw := &lineWrapper{w: w}
	for len(body) > 0 {
		i := bytes.IndexAny(body, "\r\n")
		if i < 0 {
			i = len(body)
		}
		if _, err := lw.Write(body[:i]); err != nil {
			return err
		}
		body = bytes.TrimLeft(body[i:], "\r\n")
	}
	_, err := w.Write([]byte("\r\n"))
	return err
}

// softBreakQuotedPrintable writes quoted-printable text with each line
// longer than maxLineOctets split by soft line breaks ("=" CRLF, which
// decoders remove) into lines of at most encodedLine characters, never
// inside an "=XX" escape.
func softBreakQuotedPrintable(w io.Writer, body []byte) error {
	for len(body) > 0 {
		lineEnd := len(body)
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			lineEnd = i + 1
		}
		line := body[:lineEnd]
		if len(bytes.TrimSuffix(line, []byte("\r\n"))) > maxLineOctets {
			for len(bytes.TrimSuffix(line, []byte("\r\n"))) > encodedLine {
				cut := encodedLine - 1 // room for the "="
				if j := bytes.LastIndexByte(line[cut-2:cut], '='); j >= 0 {
					cut = cut - 2 + j // keep the escape whole
				}
				if _, err := w.Write(line[:cut]); err != nil {
					return err
				}
				if _, err := w.Write([]byte("=\r\n")); err != nil {
					return err
				}
				line = line[cut:]
			}
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		body = body[lineEnd:]
	}
	return nil
}

// mostlyASCII reports whether quoted-printable would not grow b by more
// than about a third, base64's cost.
func mostlyASCII(b []byte) bool {
	escaped := 0
	for _, c := range b {
		if c >= 0x80 || c == '=' || (c < 0x20 && c != '\r' && c != '\n' && c != '\t') {
			escaped++
		}
	}
	return escaped <= len(b)/6
}

// lineWrapper writes CRLF after every encodedLine bytes written through it.
type lineWrapper struct {
	w io.Writer
	n int // bytes on the current line
}

func (l *lineWrapper) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if l.n == encodedLine {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return written, err
			}
			l.n = 0
		}
		k := min(len(p), encodedLine-l.n)
		if _, err := l.w.Write(p[:k]); err != nil {
			return written, err
		}
		l.n += k
		written += k
		p = p[k:]
	}
	return written, nil
}
