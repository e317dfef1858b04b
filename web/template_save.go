package web

import (
	"net/http"
	"net/url"
)

// templateSave is POST /users/{name}/templates/save: the fields as a new
// version (PUT /api/users/{name}/templates/{tmpl}); the store keeps every
// version, so saving never overwrites one.
func (h *handler) templateSave(w http.ResponseWriter, r *http.Request) {
	e := editorForm(r)
	if e.Name == "" {
		e.Error = "Name: give the template a name."
		h.showEditor(w, r, http.StatusUnprocessableEntity, e)
		return
	}
	t, err := h.api(r).PutTemplate(e.User, e.Name, e.request())
	if err != nil {
		h.editorRefused(w, r, e, err)
		return
	}
	h.redirect(w, r, "/users/"+url.PathEscape(e.User)+"/templates/"+url.PathEscape(t.Name),
		ok("Saved %s as version %d.", t.Name, t.Version))
}
