package web

import "net/http"

// messageBounce is POST /queue/{id}/bounce: delivery stops, the queued
// recipients fail and the sender is notified (POST /api/queue/{id}/bounce).
func (h *handler) messageBounce(w http.ResponseWriter, r *http.Request) {
	if !h.confirmed(w, r, bounceAction) {
		return
	}
	id := r.PathValue("id")
	if err := h.api(r).Bounce(id); err != nil {
		h.apiRefused(w, r, "/queue/"+id, err)
		return
	}
	h.redirect(w, r, "/queue/"+id, ok("Message %s bounced: its sender gets a delivery status notification.", id))
}
