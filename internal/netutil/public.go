package netutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// The public-address rule keeps hosts that someone other than the
// operator chooses (a sender's own SMTP server; later, webhook URLs) from
// reaching inside: the relay's own machine, its private networks, or a
// cloud provider's metadata service, which hands out credentials to
// whoever asks from the instance. It is checked twice: when the host is
// tested or saved, by name (CheckPublicHost, with an error people can act
// on), and at every connection, by the address actually dialed
// (PublicOnlyControl), so that a name that resolves to a public address
// when checked and to a private one later (DNS rebinding) still cannot
// reach inside.

// NotPublicError says that host is, or resolves to, an address that is not
// public, and which kind of address it is.
type NotPublicError struct {
	// Host is the host as given; equal to Addr's text for a literal address.
	Host string
	Addr netip.Addr
	// Kind says what the address is: "a loopback address", "a private
	// address", ...
	Kind string
}

func (e *NotPublicError) Error() string {
	if e.Host == e.Addr.String() || e.Host == "" {
		return fmt.Sprintf("%s is %s", e.Addr, e.Kind)
	}
	return fmt.Sprintf("%s resolves to %s, %s", e.Host, e.Addr, e.Kind)
}

// nonPublic lists the address ranges that are not public, most specific
// first: 169.254.169.254 is reported as the metadata address it is, not
// only as a link-local one.
var nonPublic = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("169.254.169.254/32"), "a cloud metadata address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address"},
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"}, // "this network": 0.0.0.0 reaches the local machine
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"}, // and 255.255.255.255, broadcast
}

// CheckPublicAddr returns a *NotPublicError when addr is a loopback,
// private (RFC 1918, ULA), link-local, carrier-grade NAT, unspecified,
// multicast, reserved or cloud metadata address, and nil when it is
// public. An IPv4 address written in IPv6 form (::ffff:10.0.0.1) is judged
// as the IPv4 address it is.
func CheckPublicAddr(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return &NotPublicError{Host: "", Addr: addr, Kind: "an invalid address"}
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(addr) {
			return &NotPublicError{Host: addr.String(), Addr: addr, Kind: r.kind}
		}
	}
	return nil
}

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckPublicHost checks that host is a public address, or a name every
// address of which is public: one private address among public ones is
// enough to refuse, since a connection may use any of them. A name that
// does not resolve is an error too: it cannot be shown to be public. nil
// r means net.DefaultResolver. The error (a *NotPublicError when an
// address is the reason) names the address and its kind; the caller adds
// how to allow it.
func CheckPublicHost(ctx context.Context, r Resolver, host string) error {
	if addr, err := netip.ParseAddr(host); err == nil {
		return CheckPublicAddr(addr)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("cannot check that %s is a public address: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("cannot check that %s is a public address: it has no addresses", host)
	}
	for _, a := range addrs {
		if err := CheckPublicAddr(a); err != nil {
			var np *NotPublicError
			if errors.As(err, &np) {
				np.Host = host
			}
			return err
		}
	}
	return nil
}

// PublicOnlyControl is a net.Dialer Control function that refuses to
// connect to an address that is not public. It runs after name resolution,
// on the very address about to be connected to, so it holds even when a
// name's addresses change after CheckPublicHost approved it.
func PublicOnlyControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to connect to %s: not an address and port", address)
	}
	if err := CheckPublicAddr(ap.Addr()); err != nil {
		return fmt.Errorf("refusing to connect: %w", err)
	}
	return nil
}
