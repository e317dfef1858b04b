package admin

import (
	"errors"
	"net/http"

	"outbound/auth"
)

// API keys of the send API (package sendapi), per user. A key is answered
// whole only by the POST that makes it; lists show its prefix.

// APIKeyRequest is the body of POST /api/users/{name}/api-keys.
type APIKeyRequest struct {
	// Name labels the key ("billing app"); optional.
	Name string `json:"name,omitempty"`
}

// APIKeyCreated is the answer to POST /api/users/{name}/api-keys: the
// key, shown this once, and its record.
type APIKeyCreated struct {
	Key    string       `json:"key"`
	APIKey *auth.APIKey `json:"api_key"`
}

func (a *api) registerAPIKeys(mux *http.ServeMux) {
	mux.Handle("GET /api/users/{name}/api-keys", a.guarded(selfOnly, a.listAPIKeys))
	mux.Handle("POST /api/users/{name}/api-keys", a.guarded(selfOnly, a.createAPIKey))
	mux.Handle("DELETE /api/users/{name}/api-keys/{prefix}", a.guarded(selfOnly, a.revokeAPIKey))
}

func (a *api) noAPIKeys() error {
	if a.APIKeys == nil {
		return &httpError{status: http.StatusNotImplemented, msg: "this server has no API keys store"}
	}
	return nil
}

func (a *api) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	if err := a.noAPIKeys(); err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, err := a.Users.Get(name); err != nil {
		return err
	}
	keys, err := a.APIKeys.List(name)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []*auth.APIKey{}
	}
	writeJSON(w, http.StatusOK, keys)
	return nil
}

func (a *api) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	if err := a.noAPIKeys(); err != nil {
		return err
	}
	name := r.PathValue("name")
	var req APIKeyRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return err
		}
	}
	if len(req.Name) > 100 {
		return badRequest("name: at most 100 characters")
	}
	if _, err := a.Users.Get(name); err != nil {
		return err
	}
	key, rec, err := a.APIKeys.Create(name, req.Name)
	if err != nil {
		return err
	}
	a.Logger.Info("API key created", "user", name, "prefix", rec.Prefix, "name", rec.Name)
	writeJSON(w, http.StatusCreated, APIKeyCreated{Key: key, APIKey: rec})
	return nil
}

func (a *api) revokeAPIKey(w http.ResponseWriter, r *http.Request) error {
	if err := a.noAPIKeys(); err != nil {
		return err
	}
	name, prefix := r.PathValue("name"), r.PathValue("prefix")
	n, err := a.APIKeys.Revoke(name, prefix)
	if errors.Is(err, auth.ErrNoSuchAPIKey) {
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	}
	if err != nil {
		return err
	}
	a.Logger.Info("API key revoked", "user", name, "prefix", prefix, "keys", n)
	writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
	return nil
}
