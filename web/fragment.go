package web

import (
	"bytes"
	"net/http"
)

// fragment renders one named template of view's set alone (no layout):
// the piece of a page that htmx puts in place.
func (h *handler) fragment(w http.ResponseWriter, r *http.Request, view, name string, data any) {
	t, ok := h.views[view]
	if !ok {
		h.Logger.Error("no such view", "view", view)
		http.Error(w, "internal error: no view "+view, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		h.Logger.Error("rendering a fragment", "view", view, "fragment", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}
