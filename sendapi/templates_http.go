package sendapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// The template endpoints, on the send API's listener with the same keys:
//
//	GET    /v1/templates                 the latest version of each
//	GET    /v1/templates/{name}          the latest version (?version=N: that one)
//	PUT    /v1/templates/{name}          store a new version (201)
//	DELETE /v1/templates/{name}          delete it, every version (204)
//	POST   /v1/templates/{name}/render   render with {"data": ...}; nothing is sent
func (h *Handler) registerTemplates(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/templates", h.listTemplates)
	mux.HandleFunc("GET /v1/templates/{name}", h.showTemplate)
	mux.HandleFunc("PUT /v1/templates/{name}", h.putTemplate)
	mux.HandleFunc("DELETE /v1/templates/{name}", h.deleteTemplate)
	mux.HandleFunc("POST /v1/templates/{name}/render", h.renderTemplate)
}

// templateBody is the body of PUT /v1/templates/{name}.
type templateBody struct {
	Subject   string   `json:"subject"`
	Text      string   `json:"text,omitempty"`
	HTML      string   `json:"html,omitempty"`
	Variables []string `json:"variables,omitempty"`
}

// renderBody is the body of POST /v1/templates/{name}/render.
type renderBody struct {
	Data    map[string]any `json:"data"`
	Version int            `json:"version,omitempty"`
}

func (h *Handler) templateError(w http.ResponseWriter, err error, name string) {
	if errors.Is(err, errNoTemplate) {
		writeError(w, http.StatusNotFound, "not_found", "no template (or version) "+strconv.Quote(name), "template")
		return
	}
	h.log.Error("template store failed", "err", err)
	writeError(w, http.StatusServiceUnavailable, "unavailable", "temporary local problem; please try again later", "")
}

// decodeBody reads a JSON body strictly, or answers 400/413.
func (h *Handler) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxTemplateBytes*2+1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the request body is larger than "+strconv.FormatInt(tooBig.Limit, 10)+" bytes", "")
			return false
		}
		if errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "invalid_json", "the body is empty; it must be a JSON object", "")
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid_json", "the body is not the JSON this endpoint takes: "+err.Error(), jsonField(err))
		return false
	}
	return true
}

func (h *Handler) listTemplates(w http.ResponseWriter, r *http.Request) {
	rec := h.authenticate(w, r)
	if rec == nil {
		return
	}
	list, err := h.tmpl.list(rec.User)
	if err != nil {
		h.templateError(w, err, "")
		return
	}
	b, _ := json.Marshal(list)
	writeJSON(w, http.StatusOK, b)
}

func (h *Handler) showTemplate(w http.ResponseWriter, r *http.Request) {
	rec := h.authenticate(w, r)
	if rec == nil {
		return
	}
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "bad_request", "version must be a positive number", "version")
			return
		}
		version = n
	}
	t, err := h.tmpl.get(rec.User, r.PathValue("name"), version)
	if err != nil {
		h.templateError(w, err, r.PathValue("name"))
		return
	}
	b, _ := json.Marshal(t)
	writeJSON(w, http.StatusOK, b)
}

func (h *Handler) putTemplate(w http.ResponseWriter, r *http.Request) {
	rec := h.authenticate(w, r)
	if rec == nil {
		return
	}
	var body templateBody
	if !h.decodeBody(w, r, &body) {
		return
	}
	t := Template{Name: r.PathValue("name"), Subject: body.Subject, Text: body.Text, HTML: body.HTML, Variables: body.Variables}
	if fe := t.validate(); fe != nil {
		status := http.StatusUnprocessableEntity
		if fe.field == "" {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, "invalid_template", fe.msg, fe.field)
		return
	}
	stored, err := h.tmpl.put(rec.User, t)
	if err != nil {
		h.templateError(w, err, t.Name)
		return
	}
	h.log.Info("template stored", "user", rec.User, "template", stored.Name, "version", stored.Version)
	b, _ := json.Marshal(stored)
	writeJSON(w, http.StatusCreated, b)
}

func (h *Handler) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	rec := h.authenticate(w, r)
	if rec == nil {
		return
	}
	if err := h.tmpl.remove(rec.User, r.PathValue("name")); err != nil {
		h.templateError(w, err, r.PathValue("name"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) renderTemplate(w http.ResponseWriter, r *http.Request) {
	rec := h.authenticate(w, r)
	if rec == nil {
		return
	}
	var body renderBody
	if !h.decodeBody(w, r, &body) {
		return
	}
	t, err := h.tmpl.get(rec.User, r.PathValue("name"), body.Version)
	if err != nil {
		h.templateError(w, err, r.PathValue("name"))
		return
	}
	out, fe := t.render(body.Data)
	if fe != nil {
		writeError(w, http.StatusUnprocessableEntity, "template_error", fe.msg, fe.field)
		return
	}
	b, _ := json.Marshal(struct {
		Template string `json:"template"`
		Version  int    `json:"version"`
		*rendered
	}{t.Name, t.Version, out})
	writeJSON(w, http.StatusOK, b)
}
