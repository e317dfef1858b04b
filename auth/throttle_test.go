package auth

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// An IPv6 client is charged by its /64: changing the address within it
// does not escape a lockout; another /64 is another source.
func TestIPv6SourceIsTheSlash64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:eeee:dddd:cccc", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
	} {
		if got := SourceOf(net.ParseIP(tc.ip)); got != tc.want {
			t.Errorf("SourceOf(%s) = %q, want %q", tc.ip, got, tc.want)
		}
	}
	th := &Throttle{MaxFailures: 3, Window: 5 * time.Minute, Lockout: 15 * time.Minute}
	for i := 1; i <= 3; i++ {
		th.Fail(SourceOf(net.ParseIP("2001:db8:1:2::"+strconv.Itoa(i))), "alice@example.com")
	}
	if _, locked := th.LoginRefused(SourceOf(net.ParseIP("2001:db8:1:2::99")), "alice@example.com"); !locked {
		t.Fatal("a new address in the same /64 escaped the lockout")
	}
	if _, locked := th.LoginRefused(SourceOf(net.ParseIP("2001:db8:1:3::1")), "alice@example.com"); locked {
		t.Fatal("another /64 is locked too")
	}
}
