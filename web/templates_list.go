package web

import (
	"net/http"
	"net/url"

	"outbound/sendapi"
)

// TemplatesPage is a user's Templates page: the latest version of each
// template, each opening the editor.
type TemplatesPage struct {
	User      string
	Path      string // the user's page
	Templates []sendapi.Template
}

// templatesList is GET /users/{name}/templates (GET /api/users/{name}/templates).
// Senders reach it from their E-mail settings, operators from a user's
// page: the phone's navigation stays short.
func (h *handler) templatesList(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("name")
	list, err := h.api(r).Templates(user)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.page(w, r, "templates", userNav(r), TemplatesPage{User: user, Path: "/users/" + url.PathEscape(user), Templates: list})
}
