package sendapi

import (
	"strings"

	"golang.org/x/net/html"
)

// htmlToText makes the plain-text part of a message whose template has
// only HTML: the text of the document, with line breaks where blocks end,
// links followed by their address, and scripts and styles left out.
// Clients that show no HTML, and spam filters, read this part.
func htmlToText(doc string) string {
	z := html.NewTokenizer(strings.NewReader(doc))
	var b strings.Builder
	skip := 0 // inside <script> or <style>
	var href string
	for {
		switch z.Next() {
		case html.ErrorToken:
			return tidyText(b.String())
		case html.TextToken:
			if skip == 0 {
				t := string(z.Text())
				words := strings.Join(strings.Fields(t), " ")
				if words == "" {
					if t != "" {
						b.WriteByte(' ')
					}
					break
				}
				if strings.TrimLeft(t, " \t\r\n") != t {
					b.WriteByte(' ')
				}
				b.WriteString(words)
				if strings.TrimRight(t, " \t\r\n") != t {
					b.WriteByte(' ')
				}
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "script", "style":
				skip++
			case "br":
				b.WriteString("\n")
			case "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "ul", "ol":
				b.WriteString("\n\n")
			case "li":
				b.WriteString("\n- ")
			case "a":
				href = ""
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					if string(k) == "href" {
						href = string(v)
					}
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style":
				if skip > 0 {
					skip--
				}
			case "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "ul", "ol":
				b.WriteString("\n\n")
			case "a":
				if href != "" && !strings.HasPrefix(href, "#") && !strings.HasPrefix(href, "cid:") {
					b.WriteString(" (" + href + ")")
				}
				href = ""
			}
		}
	}
}

// tidyText trims each line and keeps at most one empty line in a row.
func tidyText(s string) string {
	var out []string
	empty := 0
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			empty++
			if empty > 1 || len(out) == 0 {
				continue
			}
		} else {
			empty = 0
		}
		out = append(out, line)
	}
	return strings.TrimSpace(strings.Join(out, "\n")) + "\n"
}
