package admin

import (
	"errors"
	"net/http"
	"strconv"

	"outbound/sendapi"
)

// A user's templates, over the send API's own store (sendapi.Templates):
// the same validation, versions and rendering as /v1/templates, for
// operators (any user) and a sender itself (the web interface's editor).
//
//	GET    /api/users/{name}/templates                  the latest version of each
//	GET    /api/users/{name}/templates/{tmpl}           the latest (?version=N: that one)
//	PUT    /api/users/{name}/templates/{tmpl}           a new version (201)
//	DELETE /api/users/{name}/templates/{tmpl}           every version
//	POST   /api/users/{name}/templates/{tmpl}/render    render with sample data; nothing is sent

// TemplateRequest is the body of PUT /api/users/{name}/templates/{tmpl}.
type TemplateRequest struct {
	Subject   string   `json:"subject"`
	Text      string   `json:"text,omitempty"`
	HTML      string   `json:"html,omitempty"`
	Variables []string `json:"variables,omitempty"`
}

// RenderRequest is the body of POST .../templates/{tmpl}/render: Data
// renders the stored Version (0: the latest), or Template when given —
// the editor's unsaved text, validated as a save would be.
type RenderRequest struct {
	Data     map[string]any   `json:"data"`
	Version  int              `json:"version,omitempty"`
	Template *TemplateRequest `json:"template,omitempty"`
}

// RenderResult is a rendered template; nothing was sent.
type RenderResult struct {
	Template string `json:"template"`
	Version  int    `json:"version,omitempty"`
	Subject  string `json:"subject"`
	Text     string `json:"text"`
	HTML     string `json:"html,omitempty"`
}

func (a *api) registerTemplates(mux *http.ServeMux) {
	mux.Handle("GET /api/users/{name}/templates", a.guarded(selfOnly, a.listTemplates))
	mux.Handle("GET /api/users/{name}/templates/{tmpl}", a.guarded(selfOnly, a.showTemplate))
	mux.Handle("PUT /api/users/{name}/templates/{tmpl}", a.guarded(selfOnly, a.putTemplate))
	mux.Handle("DELETE /api/users/{name}/templates/{tmpl}", a.guarded(selfOnly, a.deleteTemplate))
	mux.Handle("POST /api/users/{name}/templates/{tmpl}/render", a.guarded(selfOnly, a.renderTemplate))
}

// templateUser is the request's user, which must exist, once the store is
// known to be configured.
func (a *api) templateUser(r *http.Request) (string, error) {
	if a.Templates == nil {
		return "", &httpError{status: http.StatusNotImplemented, msg: "this server has no template store"}
	}
	name := r.PathValue("name")
	_, err := a.Users.Get(name)
	return name, err
}

// templateFailed maps the store's refusals to statuses as the send API
// does: a template that does not validate or render is 422 (413 for its
// size), one that does not exist 404.
func templateFailed(err error, tmpl string) error {
	var te *sendapi.TemplateError
	switch {
	case errors.As(err, &te) && te.Field == "":
		return &httpError{status: http.StatusRequestEntityTooLarge, msg: te.Message}
	case errors.As(err, &te):
		return &httpError{status: http.StatusUnprocessableEntity, msg: te.Message}
	case errors.Is(err, sendapi.ErrNoTemplate):
		return &httpError{status: http.StatusNotFound, msg: "no template (or version) " + strconv.Quote(tmpl)}
	}
	return err
}

func (a *api) listTemplates(w http.ResponseWriter, r *http.Request) error {
	user, err := a.templateUser(r)
	if err != nil {
		return err
	}
	list, err := a.Templates.List(user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (a *api) showTemplate(w http.ResponseWriter, r *http.Request) error {
	user, err := a.templateUser(r)
	if err != nil {
		return err
	}
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = strconv.Atoi(v); err != nil || version < 1 {
			return badRequest("version: a positive number")
		}
	}
	t, err := a.Templates.Get(user, r.PathValue("tmpl"), version)
	if err != nil {
		return templateFailed(err, r.PathValue("tmpl"))
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *api) putTemplate(w http.ResponseWriter, r *http.Request) error {
	user, err := a.templateUser(r)
	if err != nil {
		return err
	}
	var req TemplateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	t, err := a.Templates.Put(user, templateOf(r.PathValue("tmpl"), &req))
	if err != nil {
		return templateFailed(err, r.PathValue("tmpl"))
	}
	a.Logger.Info("template stored", "user", user, "template", t.Name, "version", t.Version)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (a *api) deleteTemplate(w http.ResponseWriter, r *http.Request) error {
	user, err := a.templateUser(r)
	if err != nil {
		return err
	}
	if err := a.Templates.Delete(user, r.PathValue("tmpl")); err != nil {
		return templateFailed(err, r.PathValue("tmpl"))
	}
	a.Logger.Info("template deleted", "user", user, "template", r.PathValue("tmpl"))
	writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("tmpl")})
	return nil
}

func (a *api) renderTemplate(w http.ResponseWriter, r *http.Request) error {
	user, err := a.templateUser(r)
	if err != nil {
		return err
	}
	var req RenderRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name := r.PathValue("tmpl")
	res := RenderResult{Template: name}
	var out *sendapi.Rendered
	if req.Template != nil {
		out, err = a.Templates.Preview(templateOf(name, req.Template), req.Data)
	} else {
		var t *sendapi.Template
		t, out, err = a.Templates.Render(user, name, req.Version, req.Data)
		if t != nil {
			res.Version = t.Version
		}
	}
	if err != nil {
		return templateFailed(err, name)
	}
	res.Subject, res.Text, res.HTML = out.Subject, out.Text, out.HTML
	writeJSON(w, http.StatusOK, res)
	return nil
}

func templateOf(name string, req *TemplateRequest) sendapi.Template {
	return sendapi.Template{Name: name, Subject: req.Subject, Text: req.Text, HTML: req.HTML, Variables: req.Variables}
}
