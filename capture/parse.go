package capture

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
)

// Subject is the decoded Subject of a message, "" when it has none or
// the header cannot be parsed.
func Subject(body []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	s := m.Header.Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	return s
}

// Header is one header field as it appears in the message: its name as
// written, its value unfolded onto one line and its encoded words decoded.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Attachment is a part that is neither the text nor the HTML body.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
}

// Parts is a captured message taken apart for viewing.
type Parts struct {
	Headers     []Header     `json:"headers"`
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	Attachments []Attachment `json:"attachments"`
}

// Parse takes a message apart: its header fields in the message's order
// (decoded), its first text/plain and text/html parts (transfer-decoded)
// and its attachments. A part that cannot be parsed is skipped: viewing
// never fails on odd mail; a message whose header net/mail refuses is
// shown as text, whole.
func Parse(body []byte) Parts {
	var p Parts
	m, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		p.Text = string(body)
		return p
	}
	// net/mail's header is a map under canonical names: the fields are
	// read again from the bytes, for their order and spelling.
	p.Headers = headerFields(body)
	dec := new(mime.WordDecoder)
	for i, h := range p.Headers {
		if d, err := dec.DecodeHeader(h.Value); err == nil {
			p.Headers[i].Value = d
		}
	}
	p.walk(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), "", m.Body, 0)
	return p
}

// headerFields are the header fields of msg in order, up to the blank
// line that ends the header: each under its name as written, a folded
// field unfolded (its lines joined by a space, as net/mail does). A line
// that is neither a field nor a continuation of one is skipped.
func headerFields(msg []byte) []Header {
	var out []Header
	for len(msg) > 0 {
		line, rest, _ := bytes.Cut(msg, []byte("\n"))
		msg = rest
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(out); n > 0 {
				out[n-1].Value = strings.TrimSpace(out[n-1].Value + " " + strings.TrimSpace(string(line)))
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		out = append(out, Header{Name: string(bytes.TrimRight(name, " \t")), Value: strings.TrimSpace(string(value))})
	}
	return out
}

func (p *Parts) walk(ctype, cte, disposition string, r io.Reader, depth int) {
	if depth > 10 {
		return
	}
	if ctype == "" {
		ctype = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = "application/octet-stream"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if err != nil {
				return
			}
			p.walk(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"),
				part.Header.Get("Content-Disposition"), part, depth+1)
		}
	}
	data, err := io.ReadAll(decode(cte, r))
	if err != nil {
		return
	}
	disp, dparams, _ := mime.ParseMediaType(disposition)
	switch {
	case disp != "attachment" && mt == "text/plain" && p.Text == "":
		p.Text = string(data)
	case disp != "attachment" && mt == "text/html" && p.HTML == "":
		p.HTML = string(data)
	default:
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		p.Attachments = append(p.Attachments, Attachment{Filename: name, ContentType: mt, Size: len(data)})
	}
}
