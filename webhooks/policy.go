package webhooks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"

	"outbound/internal/netutil"
)

// Policy is the operator's rule for endpoint URLs ([webhooks]).
type Policy struct {
	// AllowHTTP accepts http:// URLs; otherwise only https://, so that
	// events and their signatures do not cross networks in the clear.
	AllowHTTP bool
	// AllowPrivate accepts hosts on loopback, private, link-local and
	// cloud metadata addresses; otherwise a URL must resolve only to
	// public ones, at registration and at every connection.
	AllowPrivate bool
	// Resolver resolves endpoint hosts, at registration and for every
	// connection; nil means net.DefaultResolver.
	Resolver netutil.Resolver
}

// CheckURL says whether rawURL may be an endpoint, with an error that
// says what to change.
func (p Policy) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("webhook URL %q is not an absolute URL such as https://app.example.com/hooks/outbound", rawURL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return fmt.Errorf("webhook URL %s must use https (the operator may allow http with [webhooks] allow_http)", rawURL)
	default:
		return fmt.Errorf("webhook URL %s must use https", rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("webhook URL %s may not carry a user or password: the signature authenticates the relay", u.Redacted())
	}
	if u.Fragment != "" {
		return fmt.Errorf("webhook URL %s may not have a #fragment", rawURL)
	}
	if p.AllowPrivate {
		return nil
	}
	if err := netutil.CheckPublicHost(ctx, p.Resolver, u.Hostname()); err != nil {
		return fmt.Errorf("webhook URL %s: %w; only public addresses are allowed (the operator may allow others with [webhooks] allow_private)", rawURL, err)
	}
	return nil
}

// dialContext connects to addr ("host:port"), resolving the host with the
// policy's resolver; unless private addresses are allowed, each address
// is checked where it is dialed (netutil.PublicOnlyControl), so a name
// that was public at registration and resolves inside now (DNS
// rebinding) is still refused.
func (p Policy) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := *d
	if !p.AllowPrivate {
		dialer.Control = netutil.PublicOnlyControl
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var r netutil.Resolver = net.DefaultResolver
		if p.Resolver != nil {
			r = p.Resolver
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, err
		}
		var first error
		for _, ip := range ips {
			c, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			if first == nil {
				first = err
			}
		}
		if first == nil {
			first = fmt.Errorf("%s has no addresses", host)
		}
		return nil, first
	}
}
