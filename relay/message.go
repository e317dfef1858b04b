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
// bytes when normalized. Every CR and every LF that is not half of a CRLF
// is bare, and CRLFs cannot overlap, so three vectorised counts do what a
// loop over every byte would (it was a tenth of the relay's CPU with
// 256 KiB messages).
func bareLineEndings(b []byte) int {
	crlf := bytes.Count(b, crlfBytes)
	return bytes.Count(b, crBytes) - crlf + bytes.Count(b, lfBytes) - crlf
}

var crlfBytes, crBytes, lfBytes = []byte("\r\n"), []byte("\r"), []byte("\n")

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
func parseHeader(block []byte) (header, *reply) {
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
		if r := checkFieldName(name); r != nil {
			return nil, r
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
func checkFieldName(name string) *reply {
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

// parsedMessage is a message as the relay reads it, once: the checks
// (header fields, who the message is from), the sender defaults and the
// long-line rewrite all work from this one reading, and the changes they
// make to the header are made together, against the spans read here, as
// the message is written for the queue (headerChanges). Nothing reads the
// header a second time, so nothing can read it differently.
type parsedMessage struct {
	// msg is the whole message, with CRLF line endings
	// (normalizeLineEndings ran).
	msg []byte
	// block is the header block, a prefix of msg (splitHeader), and header
	// its fields.
	block  []byte
	header header
	// from holds each From field with its addresses, in order.
	from []addressField
}

// addressField is a header field and the addresses in it.
type addressField struct {
	headerField
	addrs []*mail.Address
}

// parseMessage reads msg's header and the addresses of its From fields.
// What does not parse is refused with a 550 5.6.0 naming it.
func parseMessage(msg []byte) (*parsedMessage, *reply) {
	block, _ := splitHeader(msg)
	h, r := parseHeader(block)
	if r != nil {
		return nil, r
	}
	m := &parsedMessage{msg: msg, block: block, header: h}
	for _, f := range h.fields("From") {
		addrs, err := headerAddresses([]string{f.value})
		if err != nil {
			return nil, errHeaderUnparseable("From", err)
		}
		m.from = append(m.from, addressField{f, addrs})
	}
	return m, nil
}

// fromAddresses returns the addresses of every From field, in order.
func (m *parsedMessage) fromAddresses() []*mail.Address {
	var out []*mail.Address
	for _, f := range m.from {
		out = append(out, f.addrs...)
	}
	return out
}

// write writes the message to w with changes made to its header.
func (m *parsedMessage) write(w io.Writer, c headerChanges) error {
	if _, err := w.Write(c.apply(m.block, m.header)); err != nil {
		return err
	}
	_, err := w.Write(m.msg[len(m.block):])
	return err
}

// replaceHeader turns buf, which holds the message pm was parsed from,
// into the message as queued: added, then pm's header with changes made,
// then the body, which stays where it is (the header block gives way, and
// the buffer's room in front takes what is longer). It writes what
// pm.write after added would, without copying the body. pm's slices of
// the message are stale after it; its strings are not.
func replaceHeader(buf *heldBuffer, pm *parsedMessage, added []byte, changes headerChanges) error {
	head := append(append([]byte(nil), added...), changes.apply(pm.block, pm.header)...)
	buf.dropFront(len(pm.block))
	return buf.prepend(head)
}

// headerChanges are changes to a message's own header, stated against its
// fields as parsed: the sender defaults name the From and add a Reply-To,
// the long-line rewrite replaces Content-Transfer-Encoding, and apply
// makes them all in one pass over the header block. The zero value
// changes nothing.
type headerChanges struct {
	// replace maps a field, by its start in the header block, to the
	// bytes (whole lines, CRLF included) that take its place; empty bytes
	// remove it.
	replace map[int][]byte
	// add holds whole fields to write after the last one.
	add []byte
}

func (c headerChanges) empty() bool { return len(c.replace) == 0 && len(c.add) == 0 }

// growth is about how many bytes apply adds to a header whose fields are
// h (negative when it removes more), for sizing a buffer: not counted is
// the CRLF apply puts before added fields when the header's last line has
// none, which the sender defaults never need (they add nothing then).
func (c headerChanges) growth(h header) int {
	n := len(c.add)
	for _, f := range h {
		if with, ok := c.replace[f.start]; ok {
			n += len(with) - (f.end - f.start)
		}
	}
	return n
}

// apply returns block, whose fields are h, with the changes made; block
// itself when there are none. Added fields start on a line of their own.
func (c headerChanges) apply(block []byte, h header) []byte {
	if c.empty() {
		return block
	}
	out := make([]byte, 0, len(block)+len(c.add)+64*len(c.replace))
	pos := 0
	for _, f := range h {
		if with, ok := c.replace[f.start]; ok {
			out = append(append(out, block[pos:f.start]...), with...)
			pos = f.end
		}
	}
	out = append(out, block[pos:]...)
	if len(c.add) > 0 && len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return append(out, c.add...)
}
