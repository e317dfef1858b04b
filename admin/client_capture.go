package admin

import (
	"net/url"

	"outbound/capture"
)

// Captured is GET /api/capture: the captured messages whose recipients and
// subject contain to and subject (case-insensitive; empty matches all),
// newest first, without their bodies.
func (c *Client) Captured(to, subject string) ([]capture.Message, error) {
	q := url.Values{}
	if to != "" {
		q.Set("to", to)
	}
	if subject != "" {
		q.Set("subject", subject)
	}
	path := "/api/capture"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return list[capture.Message](c, path)
}

// CapturedMessage is GET /api/capture/{id}: one message with its bytes
// and parts.
func (c *Client) CapturedMessage(id string) (*CapturedMessage, error) {
	return get[CapturedMessage](c, "GET", "/api/capture/"+url.PathEscape(id), nil)
}

// DeleteCaptured is DELETE /api/capture/{id}.
func (c *Client) DeleteCaptured(id string) error {
	return c.do("DELETE", "/api/capture/"+url.PathEscape(id), nil, nil)
}

// ClearCaptured is DELETE /api/capture: every captured message goes.
func (c *Client) ClearCaptured() (int, error) {
	r, err := get[CaptureCleared](c, "DELETE", "/api/capture", nil)
	if err != nil {
		return 0, err
	}
	return r.Deleted, nil
}
