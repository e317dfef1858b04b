package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"outbound/admin"
)

// TemplateEditor is the editor page of one template: the fields as
// stored or entered, the API's refusal, and a preview when asked for.
type TemplateEditor struct {
	User string
	Path string // the user's page
	// New is a template not saved yet: its Name can be chosen.
	New bool
	// Version is the stored version the fields came from (0: none).
	Version                                      int
	Name, Subject, Text, HTML, Variables, Sample string
	Error                                        string
	Preview                                      *admin.RenderResult
}

// templateNew is GET /users/{name}/templates/new: an empty editor.
func (h *handler) templateNew(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("name")
	// The user must be one the actor may see, like every page of it.
	if _, err := h.api(r).User(user); err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.showEditor(w, r, http.StatusOK, &TemplateEditor{User: user, New: true, Sample: "{}"})
}

// templateEdit is GET /users/{name}/templates/{tmpl}: the editor on the
// latest version.
func (h *handler) templateEdit(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("name")
	t, err := h.api(r).Template(user, r.PathValue("tmpl"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	sample := map[string]string{}
	for _, v := range t.Variables {
		sample[v] = ""
	}
	data, _ := json.MarshalIndent(sample, "", "  ")
	h.showEditor(w, r, http.StatusOK, &TemplateEditor{User: user, Version: t.Version, Name: t.Name,
		Subject: t.Subject, Text: t.Text, HTML: t.HTML, Variables: joinList(t.Variables), Sample: string(data)})
}

// editorForm is the editor as posted.
func editorForm(r *http.Request) *TemplateEditor {
	return &TemplateEditor{User: r.PathValue("name"), New: r.PostFormValue("new") == "yes",
		Name: strings.TrimSpace(r.PostFormValue("tmpl")), Subject: r.PostFormValue("subject"),
		Text: r.PostFormValue("text"), HTML: r.PostFormValue("html"),
		Variables: r.PostFormValue("variables"), Sample: r.PostFormValue("sample")}
}

func (e *TemplateEditor) request() admin.TemplateRequest {
	return admin.TemplateRequest{Subject: e.Subject, Text: e.Text, HTML: e.HTML, Variables: splitList(e.Variables)}
}

// showEditor draws the editor with status.
func (h *handler) showEditor(w http.ResponseWriter, r *http.Request, status int, e *TemplateEditor) {
	e.Path = "/users/" + url.PathEscape(e.User)
	h.render(w, r, status, "template_edit", userNav(r), e)
}

// editorRefused shows the editor again with the API's refusal in its
// own words; a user or template the actor cannot see is not found.
func (h *handler) editorRefused(w http.ResponseWriter, r *http.Request, e *TemplateEditor, err error) {
	st := apiStatus(err)
	if st == http.StatusNotFound || st < 400 || st >= 500 {
		h.apiFail(w, r, err)
		return
	}
	e.Error = err.Error()
	h.showEditor(w, r, st, e)
}
