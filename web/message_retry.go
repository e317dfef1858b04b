package web

import "net/http"

// messageRetry is POST /queue/{id}/retry: the message's queued recipients
// are attempted now (POST /api/queue/{id}/retry).
func (h *handler) messageRetry(w http.ResponseWriter, r *http.Request) {
	if !h.confirmed(w, r, retryAction) {
		return
	}
	id := r.PathValue("id")
	if err := h.api(r).Retry(id); err != nil {
		h.apiRefused(w, r, "/queue/"+id, err)
		return
	}
	h.redirect(w, r, "/queue/"+id, ok("Message %s will be retried now.", id))
}
