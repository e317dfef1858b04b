package netutil

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckPublicAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"8.8.8.8":              "",
		"2001:4860:4860::8888": "",
		"100.63.255.255":       "",
		"172.32.0.1":           "",
		"169.254.169.254":      "a cloud metadata address",
		"fd00:ec2::254":        "a cloud metadata address",
		"127.0.0.1":            "a loopback address",
		"127.9.9.9":            "a loopback address",
		"::1":                  "a loopback address",
		"::ffff:127.0.0.1":     "a loopback address",
		"0.0.0.0":              "an unspecified address",
		"::":                   "an unspecified address",
		"10.1.2.3":             "a private address",
		"172.16.0.1":           "a private address",
		"172.31.255.255":       "a private address",
		"192.168.1.1":          "a private address",
		"::ffff:192.168.1.1":   "a private address",
		"fd12:3456::1":         "a private address",
		"100.64.0.1":           "a shared (carrier-grade NAT) address",
		"169.254.1.1":          "a link-local address",
		"fe80::1":              "a link-local address",
		"fe80::1%eth0":         "a link-local address",
		"224.0.0.1":            "a multicast address",
		"ff02::1":              "a multicast address",
		"255.255.255.255":      "a reserved address",
	} {
		err := CheckPublicAddr(netip.MustParseAddr(addr))
		var np *NotPublicError
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want public", addr, err)
		case want != "" && (!errors.As(err, &np) || np.Kind != want):
			t.Errorf("%s: %v, want %s", addr, err, want)
		}
	}
}

// zone is a resolver answering from a fixed table.
type zone map[string][]string

func (z zone) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	list, ok := z[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func TestCheckPublicHost(t *testing.T) {
	z := zone{
		"smtp.example.com":  {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
		"mixed.example.com": {"93.184.216.34", "10.0.0.7"},
		"meta.example.com":  {"169.254.169.254"},
		"empty.example.com": {},
	}
	for _, tc := range []struct{ host, want string }{
		{"smtp.example.com", ""},
		{"93.184.216.34", ""},
		{"10.0.0.7", "10.0.0.7 is a private address"},
		{"::1", "::1 is a loopback address"},
		// One private address among public ones is enough: a connection
		// may use any of them.
		{"mixed.example.com", "mixed.example.com resolves to 10.0.0.7, a private address"},
		{"meta.example.com", "meta.example.com resolves to 169.254.169.254, a cloud metadata address"},
		{"empty.example.com", "cannot check that empty.example.com is a public address: it has no addresses"},
		{"nowhere.example.com", "cannot check that nowhere.example.com is a public address: lookup nowhere.example.com: no such host"},
	} {
		err := CheckPublicHost(context.Background(), z, tc.host)
		if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
			t.Errorf("CheckPublicHost(%q) = %v, want %q", tc.host, err, tc.want)
		}
	}
}

// A dialer with PublicOnlyControl refuses the address it is about to
// connect to, whatever name led there: here a listener on loopback that
// accepts connections from anyone else.
func TestPublicOnlyControlRefusesLoopbackAtDialTime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if c, err := net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatalf("an ordinary dial fails: %v", err)
	} else {
		c.Close()
	}
	d := &net.Dialer{Control: PublicOnlyControl}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c, err := d.Dial("tcp", net.JoinHostPort(host, port))
		if err == nil {
			c.Close()
			t.Fatalf("dial %s: connected to a loopback address", host)
		}
		var np *NotPublicError
		if !errors.As(err, &np) || !strings.Contains(err.Error(), "refusing to connect: 127.0.0.1 is a loopback address") && !strings.Contains(err.Error(), "::1 is a loopback address") {
			t.Fatalf("dial %s: %v", host, err)
		}
	}
	if err := PublicOnlyControl("tcp4", "93.184.216.34:587", nil); err != nil {
		t.Fatalf("a public address is refused: %v", err)
	}
}
