package admin

import (
	"net/url"

	"outbound/webhooks"
)

// Webhooks is GET /api/users/{name}/webhooks: the user's endpoints.
func (c *Client) Webhooks(user string) ([]webhooks.Endpoint, error) {
	return list[webhooks.Endpoint](c, "/api/users/"+url.PathEscape(user)+"/webhooks")
}

// AddWebhook is POST /api/users/{name}/webhooks: the endpoint and its
// secret, which the API shows only this once.
func (c *Client) AddWebhook(user string, req WebhookRequest) (*WebhookCreated, error) {
	return get[WebhookCreated](c, "POST", "/api/users/"+url.PathEscape(user)+"/webhooks", req)
}

// DeleteWebhook is DELETE /api/users/{name}/webhooks/{id}.
func (c *Client) DeleteWebhook(user, id string) error {
	return c.do("DELETE", "/api/users/"+url.PathEscape(user)+"/webhooks/"+url.PathEscape(id), nil, nil)
}

// EnableWebhook is POST /api/users/{name}/webhooks/{id}/enable: a
// disabled endpoint is sent to again, what waited for it first.
func (c *Client) EnableWebhook(user, id string) (*webhooks.Endpoint, error) {
	return get[webhooks.Endpoint](c, "POST", "/api/users/"+url.PathEscape(user)+"/webhooks/"+url.PathEscape(id)+"/enable", nil)
}
