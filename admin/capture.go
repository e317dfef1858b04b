package admin

import (
	"errors"
	"net/http"

	"outbound/capture"
)

// The capture endpoints show what the capture route kept instead of
// sending (package capture): an app's test suite asserts with
// GET /api/capture?to=&subject= that its code sent a message; operators
// list, show, delete and clear captures from the CLI and the web
// interface. Operators only: a capture is anyone's mail.

// CapturedMessage is GET /api/capture/{id}: the captured message with its
// bytes (Body, base64 in JSON) and its parts taken apart for viewing.
type CapturedMessage struct {
	capture.Message
	Parts capture.Parts `json:"parts"`
}

// CaptureCleared is the answer of DELETE /api/capture.
type CaptureCleared struct {
	Deleted int `json:"deleted"`
}

func (a *api) registerCapture(mux *http.ServeMux) {
	mux.Handle("GET /api/capture", a.authed(a.listCapture))
	mux.Handle("GET /api/capture/{id}", a.authed(a.showCapture))
	mux.Handle("DELETE /api/capture/{id}", a.authed(a.deleteCapture))
	mux.Handle("DELETE /api/capture", a.authed(a.clearCapture))
}

func (a *api) noCapture() error {
	if a.Capture == nil {
		return &httpError{status: http.StatusNotImplemented, msg: "this server keeps no captured messages"}
	}
	return nil
}

func captureErr(err error) error {
	if errors.Is(err, capture.ErrNotFound) {
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	}
	return err
}

func (a *api) listCapture(w http.ResponseWriter, r *http.Request) error {
	if err := a.noCapture(); err != nil {
		return err
	}
	q := r.URL.Query()
	list, err := a.Capture.List(capture.Filter{To: q.Get("to"), Subject: q.Get("subject")})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (a *api) showCapture(w http.ResponseWriter, r *http.Request) error {
	if err := a.noCapture(); err != nil {
		return err
	}
	m, err := a.Capture.Get(r.PathValue("id"))
	if err != nil {
		return captureErr(err)
	}
	out := CapturedMessage{Message: *m}
	if m.Body != nil {
		out.Parts = capture.Parse(m.Body)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) deleteCapture(w http.ResponseWriter, r *http.Request) error {
	if err := a.noCapture(); err != nil {
		return err
	}
	if err := a.Capture.Delete(r.PathValue("id")); err != nil {
		return captureErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) clearCapture(w http.ResponseWriter, r *http.Request) error {
	if err := a.noCapture(); err != nil {
		return err
	}
	n, err := a.Capture.Clear()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, CaptureCleared{Deleted: n})
	return nil
}
