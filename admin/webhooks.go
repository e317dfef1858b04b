package admin

import (
	"errors"
	"net/http"

	"outbound/events"
	"outbound/webhooks"
)

// WebhookRequest is the body of POST /api/users/{name}/webhooks.
type WebhookRequest struct {
	// URL is where the user's events are POSTed: https, at a public
	// address unless the operator allows otherwise ([webhooks]).
	URL string `json:"url"`
	// Kinds are the event kinds sent (events.Kinds); empty: every kind.
	Kinds []events.Kind `json:"kinds,omitempty"`
}

// WebhookCreated is the answer to POST /api/users/{name}/webhooks: the
// endpoint and its signing secret, which is shown this once.
type WebhookCreated struct {
	webhooks.Endpoint
	// Secret is the Standard Webhooks signing secret (whsec_...).
	Secret string `json:"secret"`
}

func (a *api) registerWebhooks(mux *http.ServeMux) {
	mux.Handle("GET /api/users/{name}/webhooks", a.guarded(selfOnly, a.listWebhooks))
	mux.Handle("POST /api/users/{name}/webhooks", a.guarded(selfOnly, a.addWebhook))
	mux.Handle("DELETE /api/users/{name}/webhooks/{id}", a.guarded(selfOnly, a.deleteWebhook))
	mux.Handle("POST /api/users/{name}/webhooks/{id}/enable", a.guarded(selfOnly, a.enableWebhook))
}

func (a *api) noWebhooks() error {
	if a.Webhooks == nil {
		return &httpError{status: http.StatusNotImplemented, msg: "this server sends no webhooks"}
	}
	return nil
}

func (a *api) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	if err := a.noWebhooks(); err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, err := a.Users.Get(name); err != nil {
		return err
	}
	list, err := a.Webhooks.List(name)
	if err != nil {
		return err
	}
	if list == nil {
		list = []webhooks.Endpoint{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (a *api) addWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := a.noWebhooks(); err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, err := a.Users.Get(name); err != nil {
		return err
	}
	var req WebhookRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.URL == "" {
		return badRequest("url is required: where to POST the events, such as https://app.example.com/hooks/outbound")
	}
	ep, secret, err := a.Webhooks.Register(r.Context(), name, req.URL, req.Kinds)
	var in *webhooks.InputError
	if errors.As(err, &in) {
		return badRequest("%s", in.Error())
	}
	if err != nil {
		return err
	}
	a.Logger.Info("webhook endpoint added", "user", name, "endpoint", ep.ID, "url", ep.URL, "by_sender", actingSender(r) != "")
	writeJSON(w, http.StatusCreated, WebhookCreated{Endpoint: ep, Secret: secret})
	return nil
}

// userWebhook is the endpoint {id} of user {name}; another user's is not
// found, as if it did not exist.
func (a *api) userWebhook(r *http.Request) (webhooks.Endpoint, error) {
	if err := a.noWebhooks(); err != nil {
		return webhooks.Endpoint{}, err
	}
	ep, err := a.Webhooks.Get(r.PathValue("id"))
	if errors.Is(err, webhooks.ErrNotFound) || err == nil && ep.User != r.PathValue("name") {
		return webhooks.Endpoint{}, &httpError{status: http.StatusNotFound, msg: "user " + r.PathValue("name") + " has no webhook endpoint " + r.PathValue("id")}
	}
	return ep, err
}

func (a *api) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	ep, err := a.userWebhook(r)
	if err != nil {
		return err
	}
	if err := a.Webhooks.Delete(ep.ID); err != nil {
		return err
	}
	a.Logger.Info("webhook endpoint deleted", "user", ep.User, "endpoint", ep.ID)
	writeJSON(w, http.StatusOK, map[string]string{"deleted": ep.ID})
	return nil
}

func (a *api) enableWebhook(w http.ResponseWriter, r *http.Request) error {
	ep, err := a.userWebhook(r)
	if err != nil {
		return err
	}
	if err := a.Webhooks.Enable(ep.ID); err != nil {
		return err
	}
	ep, err = a.Webhooks.Get(ep.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ep)
	return nil
}
