package web

import "net/http"

// overview is GET /: for an operator the queue and delivery at a glance,
// for a sender its own usage.
func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	h.page(w, r, "overview", "overview", nil)
}
