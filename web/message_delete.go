package web

import "net/http"

// messageDelete is POST /queue/{id}/delete: the message is removed
// without notification (DELETE /api/queue/{id}); back to the list.
func (h *handler) messageDelete(w http.ResponseWriter, r *http.Request) {
	if !h.confirmed(w, r, deleteAction) {
		return
	}
	id := r.PathValue("id")
	if err := h.api(r).DeleteMessage(id); err != nil {
		h.apiRefused(w, r, "/queue/"+id, err)
		return
	}
	h.redirect(w, r, "/"+listNav(r), ok("Message %s deleted.", id))
}
