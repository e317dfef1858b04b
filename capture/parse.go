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

// Header is one header field as it appears in the message.
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

// Parse takes a message apart: its header fields (decoded), its first
// text/plain and text/html parts (transfer-decoded) and its attachments.
// A part that cannot be parsed is skipped: viewing never fails on odd mail.
func Parse(body []byte) Parts {
	var p Parts
	m, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		p.Text = string(body)
		return p
	}
	dec := new(mime.WordDecoder)
	for name, values := range m.Header {
		for _, v := range values {
			if d, err := dec.DecodeHeader(v); err == nil {
				v = d
			}
			p.Headers = append(p.Headers, Header{Name: name, Value: v})
		}
	}
	sortHeaders(p.Headers)
	p.walk(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), "", m.Body, 0)
	return p
}

func sortHeaders(h []Header) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].Name < h[j-1].Name; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
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
