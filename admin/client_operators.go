package admin

import "net/url"

// Operators is GET /api/operators.
func (c *Client) Operators() ([]OperatorView, error) {
	return list[OperatorView](c, "/api/operators")
}

// AddOperator is POST /api/operators.
func (c *Client) AddOperator(req OperatorRequest) (*OperatorView, error) {
	return get[OperatorView](c, "POST", "/api/operators", req)
}

// DeleteOperator is DELETE /api/operators/{name}.
func (c *Client) DeleteOperator(name string) error {
	return c.do("DELETE", "/api/operators/"+url.PathEscape(name), nil, nil)
}
