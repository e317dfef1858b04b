package admin

// TLS is GET /api/tls: the listeners' certificate, its source and status.
func (c *Client) TLS() (*TLSStatus, error) {
	return get[TLSStatus](c, "GET", "/api/tls", nil)
}
