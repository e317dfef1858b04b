package admin

import (
	"net/url"

	"outbound/auth"
)

// APIKeys is GET /api/users/{name}/api-keys: the user's send API keys,
// by prefix.
func (c *Client) APIKeys(user string) ([]auth.APIKey, error) {
	return list[auth.APIKey](c, "/api/users/"+url.PathEscape(user)+"/api-keys")
}

// CreateAPIKey is POST /api/users/{name}/api-keys: the key, which the API
// shows only this once.
func (c *Client) CreateAPIKey(user, name string) (*APIKeyCreated, error) {
	return get[APIKeyCreated](c, "POST", "/api/users/"+url.PathEscape(user)+"/api-keys", APIKeyRequest{Name: name})
}

// RevokeAPIKey is DELETE /api/users/{name}/api-keys/{prefix}; it answers
// how many keys it revoked.
func (c *Client) RevokeAPIKey(user, prefix string) (int, error) {
	res, err := get[map[string]int](c, "DELETE", "/api/users/"+url.PathEscape(user)+"/api-keys/"+url.PathEscape(prefix), nil)
	if err != nil {
		return 0, err
	}
	return (*res)["revoked"], nil
}
