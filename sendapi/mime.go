package sendapi

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

// Request is the JSON body of POST /v1/messages.
type Request struct {
	From    string            `json:"from"`
	To      []string          `json:"to"`
	Cc      []string          `json:"cc,omitempty"`
	Bcc     []string          `json:"bcc,omitempty"`
	ReplyTo []string          `json:"reply_to,omitempty"`
	Subject string            `json:"subject"`
	Text    string            `json:"text,omitempty"`
	HTML    string            `json:"html,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Attachments with a ContentID are inline (multipart/related, for
	// an HTML part's cid: references); the others are attachments
	// (multipart/mixed).
	Attachments []Attachment `json:"attachments,omitempty"`
	// Template, instead of Subject, Text and HTML, names one of the
	// user's templates (templates.go), rendered with Data;
	// TemplateVersion picks a version (0: the latest).
	Template        string         `json:"template,omitempty"`
	TemplateVersion int            `json:"template_version,omitempty"`
	Data            map[string]any `json:"data,omitempty"`
	// Tags and Metadata are the sender's labels for the message: stored
	// with it and carried into each of its events and webhook payloads,
	// never into the message itself (labels.go has their limits).
	Tags     []string          `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Attachment is one file of a message.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	// Content is the file, base64-encoded.
	Content   string `json:"content"`
	ContentID string `json:"content_id,omitempty"`
}

// built is a message ready for the relay: its envelope and its bytes.
type built struct {
	from      string
	rcpts     []string
	messageID string
	body      []byte
}

// fieldError is a request the API cannot make a message of, naming the
// JSON field at fault (422).
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// reservedHeaders are set from the request's own fields, or describe the
// MIME structure the builder makes: "headers" may not set them.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Reply-To": true, "Subject": true,
	"Date": true, "Message-Id": true, "Mime-Version": true, "Content-Type": true,
	"Content-Transfer-Encoding": true, "Content-Disposition": true, "Content-Id": true,
}

func parseAddress(field, s string) (*mail.Address, *fieldError) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, badField(field, "%q is not an address (%v); write user@example.com or Name <user@example.com>", s, err)
	}
	return a, nil
}

func parseAddresses(field string, list []string) ([]*mail.Address, *fieldError) {
	var out []*mail.Address
	for i, s := range list {
		a, fe := parseAddress(fmt.Sprintf("%s[%d]", field, i), s)
		if fe != nil {
			return nil, fe
		}
		out = append(out, a)
	}
	return out, nil
}

// build makes the message of r with go-message: text and HTML together
// as multipart/alternative, inline images with it in multipart/related,
// attachments around it all in multipart/mixed. Header text that is not
// ASCII is RFC 2047-encoded; a text part is quoted-printable when it is
// not 7-bit ASCII in lines of at most 998 octets, and attachments are
// base64, so no line of the result is longer than 998 octets.
func build(r *Request, hostname string, now time.Time) (*built, *fieldError) {
	from, fe := parseAddress("from", r.From)
	if fe != nil {
		return nil, fe
	}
	to, fe := parseAddresses("to", r.To)
	if fe != nil {
		return nil, fe
	}
	cc, fe := parseAddresses("cc", r.Cc)
	if fe != nil {
		return nil, fe
	}
	bcc, fe := parseAddresses("bcc", r.Bcc)
	if fe != nil {
		return nil, fe
	}
	replyTo, fe := parseAddresses("reply_to", r.ReplyTo)
	if fe != nil {
		return nil, fe
	}
	if len(to)+len(cc)+len(bcc) == 0 {
		return nil, badField("to", "at least one recipient is required (to, cc or bcc)")
	}
	if r.Text == "" && r.HTML == "" {
		return nil, badField("text", "a message needs text, html or both")
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		return nil, badField("subject", "must be one line")
	}

	var h gomail.Header
	h.SetAddressList("From", []*gomail.Address{from})
	if len(to) > 0 {
		h.SetAddressList("To", to)
	}
	if len(cc) > 0 {
		h.SetAddressList("Cc", cc)
	}
	if len(replyTo) > 0 {
		h.SetAddressList("Reply-To", replyTo)
	}
	h.SetSubject(r.Subject)
	h.SetDate(now)
	id := randomID()
	messageID := id + "@" + hostname
	h.SetMessageID(messageID)
	for name, v := range r.Headers {
		field := "headers." + name
		if !validHeaderName(name) {
			return nil, badField(field, "not a header field name (printable ASCII, no colon or space)")
		}
		if key := textproto.CanonicalMIMEHeaderKey(name); reservedHeaders[key] || strings.HasPrefix(key, "Content-") {
			return nil, badField(field, "set by the API from the request's own fields; use them instead")
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, badField(field, "must be one line")
		}
		h.SetText(name, v)
	}

	var inline, attached []file
	for i, a := range r.Attachments {
		field := fmt.Sprintf("attachments[%d]", i)
		if a.Filename == "" && a.ContentID == "" {
			return nil, badField(field+".filename", "an attachment needs a filename")
		}
		if strings.ContainsAny(a.Filename+a.ContentID+a.ContentType, "\r\n") {
			return nil, badField(field, "filename, content_type and content_id must be one line")
		}
		if a.ContentType != "" {
			if _, _, err := mime.ParseMediaType(a.ContentType); err != nil {
				return nil, badField(field+".content_type", "%q is not a media type", a.ContentType)
			}
		}
		data, err := base64.StdEncoding.DecodeString(a.Content)
		if err != nil {
			return nil, badField(field+".content", "not base64 (%v)", err)
		}
		if a.ContentID != "" {
			inline = append(inline, file{a, data})
		} else {
			attached = append(attached, file{a, data})
		}
	}

	var buf bytes.Buffer
	var err error
	switch {
	case len(attached) > 0:
		err = writeMixed(&buf, h.Header, r, inline, attached)
	case len(inline) > 0:
		err = writeRelated(&buf, h.Header, r, inline)
	default:
		err = writeBody(&buf, h.Header, r)
	}
	if err != nil {
		return nil, badField("", "the message cannot be built: %v", err)
	}

	b := &built{from: from.Address, messageID: "<" + messageID + ">", body: buf.Bytes()}
	for _, list := range [][]*mail.Address{to, cc, bcc} {
		for _, a := range list {
			b.rcpts = append(b.rcpts, a.Address)
		}
	}
	return b, nil
}

// writer is where a part goes: the message itself (its header is the
// message's) or a part of a multipart parent.
type writer func(h message.Header) (*message.Writer, error)

func topLevel(buf *bytes.Buffer, top message.Header) writer {
	return func(h message.Header) (*message.Writer, error) {
		// The part's content fields join the message's header.
		all := top.Copy()
		fields := h.Fields()
		for fields.Next() {
			all.Set(fields.Key(), fields.Value())
		}
		return message.CreateWriter(buf, all)
	}
}

func partOf(parent *message.Writer) writer {
	return func(h message.Header) (*message.Writer, error) { return parent.CreatePart(h) }
}

func writeMixed(buf *bytes.Buffer, top message.Header, r *Request, inline, attached []file) error {
	var h message.Header
	h.SetContentType("multipart/mixed", nil)
	w, err := topLevel(buf, top)(h)
	if err != nil {
		return err
	}
	if len(inline) > 0 {
		err = writeRelatedTo(partOf(w), r, inline)
	} else {
		err = writeBodyTo(partOf(w), r)
	}
	if err != nil {
		return err
	}
	for _, a := range attached {
		if err := writeAttachment(partOf(w), a, "attachment"); err != nil {
			return err
		}
	}
	return w.Close()
}

func writeRelated(buf *bytes.Buffer, top message.Header, r *Request, inline []file) error {
	return writeRelatedTo(topLevel(buf, top), r, inline)
}

func writeRelatedTo(create writer, r *Request, inline []file) error {
	var h message.Header
	h.SetContentType("multipart/related", nil)
	w, err := create(h)
	if err != nil {
		return err
	}
	if err := writeBodyTo(partOf(w), r); err != nil {
		return err
	}
	for _, a := range inline {
		if err := writeAttachment(partOf(w), a, "inline"); err != nil {
			return err
		}
	}
	return w.Close()
}

func writeBody(buf *bytes.Buffer, top message.Header, r *Request) error {
	return writeBodyTo(topLevel(buf, top), r)
}

// writeBodyTo writes the text and HTML: one part alone, or both as
// multipart/alternative, plainest first as RFC 2046 asks.
func writeBodyTo(create writer, r *Request) error {
	if r.Text == "" || r.HTML == "" {
		if r.HTML != "" {
			return writeText(create, "text/html", r.HTML)
		}
		return writeText(create, "text/plain", r.Text)
	}
	var h message.Header
	h.SetContentType("multipart/alternative", nil)
	w, err := create(h)
	if err != nil {
		return err
	}
	if err := writeText(partOf(w), "text/plain", r.Text); err != nil {
		return err
	}
	if err := writeText(partOf(w), "text/html", r.HTML); err != nil {
		return err
	}
	return w.Close()
}

func writeText(create writer, mediaType, text string) error {
	text = crlf(text)
	var h message.Header
	h.SetContentType(mediaType, map[string]string{"charset": "utf-8"})
	if plain7bit(text) {
		h.Set("Content-Transfer-Encoding", "7bit")
	} else {
		h.Set("Content-Transfer-Encoding", "quoted-printable")
	}
	w, err := create(h)
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(text)); err != nil {
		return err
	}
	return w.Close()
}

// file is an attachment with its content decoded.
type file struct {
	Attachment
	data []byte
}

func writeAttachment(create writer, a file, disposition string) error {
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	t, params, _ := mime.ParseMediaType(ct)
	var h message.Header
	if a.Filename != "" {
		params["name"] = a.Filename
		h.SetContentDisposition(disposition, map[string]string{"filename": a.Filename})
	} else {
		h.SetContentDisposition(disposition, nil)
	}
	h.SetContentType(t, params)
	h.Set("Content-Transfer-Encoding", "base64")
	if a.ContentID != "" {
		h.Set("Content-ID", "<"+strings.Trim(a.ContentID, "<>")+">")
	}
	w, err := create(h)
	if err != nil {
		return err
	}
	if _, err := w.Write(a.data); err != nil {
		return err
	}
	return w.Close()
}

// crlf gives text CRLF line endings, whatever it came with.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// plain7bit reports whether text may go as it is: ASCII without control
// characters other than tab, in lines of at most 998 octets.
func plain7bit(text string) bool {
	line := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\n':
			line = 0
			continue
		case c == '\r' || c == '\t':
		case c < 0x20 || c >= 0x7f:
			return false
		}
		line++
		if line > 998 {
			return false
		}
	}
	return true
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
