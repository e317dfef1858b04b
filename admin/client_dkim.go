package admin

import (
	"net/url"

	"outbound/dkim"
)

// DKIMKeys is GET /api/dkim: every domain's keys, or domain's ("" all).
func (c *Client) DKIMKeys(domain string) ([]DKIMKey, error) {
	path := "/api/dkim"
	if domain != "" {
		path += "?domain=" + url.QueryEscape(domain)
	}
	return list[DKIMKey](c, path)
}

// GenerateDKIM is POST /api/dkim/{domain}/keys: new keys beside the
// domain's others, and the records to publish.
func (c *Client) GenerateDKIM(domain string, req DKIMKeyRequest) (*DKIMKeysResult, error) {
	return get[DKIMKeysResult](c, "POST", "/api/dkim/"+url.PathEscape(domain)+"/keys", req)
}

// RotateDKIM is POST /api/dkim/{domain}/rotate: new keys, the old ones
// retired at once and published until the date each says.
func (c *Client) RotateDKIM(domain string, req DKIMKeyRequest) (*DKIMKeysResult, error) {
	return get[DKIMKeysResult](c, "POST", "/api/dkim/"+url.PathEscape(domain)+"/rotate", req)
}

// DKIMRecords is GET /api/dkim/{domain}/records: the domain's DKIM TXT
// records (retired keys until their date) and a DMARC suggestion.
func (c *Client) DKIMRecords(domain string) ([]dkim.Record, error) {
	return list[dkim.Record](c, "/api/dkim/"+url.PathEscape(domain)+"/records")
}
