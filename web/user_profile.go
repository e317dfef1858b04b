package web

import (
	"net/http"
	"strings"
)

// userProfile is GET /users/{name}/profile.mobileconfig: the Apple
// configuration profile that sets up the relay as the user's outgoing
// server (package autoconfig builds it, through Options.AppleProfile). A
// sender downloads its own; the profile holds no password.
func (h *handler) userProfile(w http.ResponseWriter, r *http.Request) {
	if h.AppleProfile == nil {
		h.notFound(w, r)
		return
	}
	// Through the API like every read: a user that does not exist is 404.
	d, err := h.api(r).User(r.PathValue("name"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	data, err := h.AppleProfile(d.Name)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	file := strings.NewReplacer("@", "_at_", "/", "_", `"`, "_", `\`, "_").Replace(d.Name) + ".mobileconfig"
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", `attachment; filename="`+file+`"`)
	w.Write(data)
}
