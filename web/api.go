package web

import (
	"errors"
	"net/http"

	"outbound/admin"
)

// api is the admin API's client for the request's actor, answered in
// process by Options.API: an operator's requests carry the token alone, a
// sender's also the acting-sender header, so that the API itself refuses
// whatever is not the sender's own (the pages are not the only guard).
func (h *handler) api(r *http.Request) *admin.Client {
	c := admin.NewClient("http://admin.in-process", h.Token, admin.InProcess(h.API))
	if a := currentActor(r); a != nil && !a.Operator() {
		c = c.ActingFor(a.Name)
	}
	return c
}

// apiStatus is the HTTP status of an API refusal, 0 for anything else.
func apiStatus(err error) int {
	var e *admin.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// apiFail shows an API error as a page: the API's own message, with its
// status (a 404 as the ordinary not-found page, which says no more).
func (h *handler) apiFail(w http.ResponseWriter, r *http.Request, err error) {
	switch st := apiStatus(err); {
	case st == http.StatusNotFound:
		h.notFound(w, r)
	case st >= 400 && st < 500:
		h.fail(w, r, st, err.Error())
	default:
		h.Logger.Error("admin API call failed", "path", r.URL.Path, "err", err)
		h.fail(w, r, http.StatusInternalServerError, "The relay could not do this: "+err.Error())
	}
}
