package admin

import "net/url"

// DNSRecords is GET /api/dns-records/{domain}: the records the domain
// should publish for this relay.
func (c *Client) DNSRecords(domain string) (*DNSRecords, error) {
	return get[DNSRecords](c, "GET", "/api/dns-records/"+url.PathEscape(domain), nil)
}
