package web

import (
	"net/http"
	"net/url"

	"outbound/auth"
)

// Revoke asks first, like a message's actions: the key's Revoke button
// opens the confirmation page (GET /users/{name}/api-keys/{prefix}/revoke),
// whose button posts the revocation with confirmed=yes. A POST without it
// only shows the question.

// APIKeyRevokePage is the data of the confirmation page.
type APIKeyRevokePage struct {
	User string
	Key  auth.APIKey
	// Action is where the confirmed revocation posts; Back the user's page.
	Action, Back string
}

// apiKeyRevokeConfirm is GET /users/{name}/api-keys/{prefix}/revoke.
func (h *handler) apiKeyRevokeConfirm(w http.ResponseWriter, r *http.Request) {
	h.confirmRevoke(w, r)
}

// apiKeyRevoke is POST /users/{name}/api-keys/{prefix}/revoke: the key no
// longer authenticates (DELETE /api/users/{name}/api-keys/{prefix}).
func (h *handler) apiKeyRevoke(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("confirmed") != "yes" {
		h.confirmRevoke(w, r)
		return
	}
	user, prefix := r.PathValue("name"), r.PathValue("prefix")
	back := "/users/" + url.PathEscape(user) + "#api-keys"
	if _, err := h.api(r).RevokeAPIKey(user, prefix); err != nil {
		h.apiRefused(w, r, back, err)
		return
	}
	h.redirect(w, r, back, ok("The API key %s… is revoked: requests with it are refused from now on.", prefix))
}

// confirmRevoke shows the question about the user's key with the route's
// prefix; a key the actor cannot see is not found.
func (h *handler) confirmRevoke(w http.ResponseWriter, r *http.Request) {
	user, prefix := r.PathValue("name"), r.PathValue("prefix")
	keys, err := h.api(r).APIKeys(user)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	for _, k := range keys {
		if k.Prefix == prefix {
			h.page(w, r, "apikey_revoke", userNav(r), APIKeyRevokePage{User: user, Key: k,
				Action: "/users/" + url.PathEscape(user) + "/api-keys/" + url.PathEscape(prefix) + "/revoke",
				Back:   "/users/" + url.PathEscape(user) + "#api-keys"})
			return
		}
	}
	h.notFound(w, r)
}

// userNav is the navigation entry of a user's pages.
func userNav(r *http.Request) string {
	if currentActor(r).Operator() {
		return "users"
	}
	return "settings"
}
