package web

import (
	"net/http"
)

// capturedShow is GET /captured/{id}: the envelope, the headers, the text
// part, the attachments and the HTML part rendered in an iframe with the
// sandbox attribute and no permissions (no scripts, no forms, no
// navigation of this page, a unique origin), from srcdoc: the frame
// inherits this page's Content-Security-Policy, so the message cannot
// load anything from elsewhere either (no tracking pixels, no remote
// styles) and the web interface's policy holds unchanged.
func (h *handler) capturedShow(w http.ResponseWriter, r *http.Request) {
	m, err := h.api(r).CapturedMessage(r.PathValue("id"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.page(w, r, "captured_show", "captured", m)
}
