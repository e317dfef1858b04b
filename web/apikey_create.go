package web

import (
	"net/http"
	"strings"

	"outbound/admin"
	"outbound/auth"
)

// APIKeysSection is the API keys section of a user's page: the keys by
// name, prefix, creation and last use, and the Create API key form.
type APIKeysSection struct {
	// Enabled says the server keeps API keys (the API answers 501 when it
	// does not); the section is left out otherwise.
	Enabled bool
	Keys    []auth.APIKey
	// Name is the Name field as entered, Error the API's refusal.
	Name, Error string
	// Created is the key just made. It is drawn in this one answer only:
	// the page is rendered, not redirected to, so the key is never put
	// in a flash or any later page (the API keeps only its hash).
	Created *admin.APIKeyCreated
}

// apiKeysSection reads user's keys; a server without a key store is a
// section left out, not an error.
func (h *handler) apiKeysSection(r *http.Request, user string) (APIKeysSection, error) {
	keys, err := h.api(r).APIKeys(user)
	if apiStatus(err) == http.StatusNotImplemented {
		return APIKeysSection{}, nil
	}
	if err != nil {
		return APIKeysSection{}, err
	}
	return APIKeysSection{Enabled: true, Keys: keys}, nil
}

// apiKeyCreate is POST /users/{name}/api-keys: a new key for the user
// (POST /api/users/{name}/api-keys), shown once on the user page drawn in
// answer. Reloading would make another key, which is harmless and why the
// page says to copy it now.
func (h *handler) apiKeyCreate(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	created, err := h.api(r).CreateAPIKey(r.PathValue("name"), name)
	h.userRefused(w, r, err, func(p *UserPage) {
		if err != nil {
			p.APIKeys.Name, p.APIKeys.Error = name, err.Error()
		} else {
			p.APIKeys.Created = created
		}
		// No cache may keep the page that holds the key (set here, before
		// the page is written).
		w.Header().Set("Cache-Control", "no-store")
	})
}
