package web

import (
	"encoding/json"
	"net/http"
	"strings"

	"outbound/admin"
)

// templatePreview is POST /users/{name}/templates/preview: the editor's
// fields rendered with its Sample data by the API (POST
// .../templates/{tmpl}/render with the unsaved template), nothing saved
// or sent. The page shows the subject, the text and the HTML, the HTML in
// a sandboxed iframe's srcdoc (no scripts, its own origin): a template's
// markup can never act on the interface.
func (h *handler) templatePreview(w http.ResponseWriter, r *http.Request) {
	e := editorForm(r)
	var data map[string]any
	if s := strings.TrimSpace(e.Sample); s != "" {
		if err := json.Unmarshal([]byte(s), &data); err != nil {
			e.Error = "Sample data: not a JSON object: " + err.Error()
			h.showEditor(w, r, http.StatusUnprocessableEntity, e)
			return
		}
	}
	name := e.Name
	if name == "" {
		name = "preview"
	}
	req := e.request()
	res, err := h.api(r).RenderTemplate(e.User, name, admin.RenderRequest{Data: data, Template: &req})
	if err != nil {
		h.editorRefused(w, r, e, err)
		return
	}
	e.Preview = res
	h.showEditor(w, r, http.StatusOK, e)
}
