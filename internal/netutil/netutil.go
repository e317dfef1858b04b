// Package netutil holds the network rules that more than one package
// applies to settings it validates. It imports nothing of ours, so that
// config (which must stay a leaf) and smarthost can share it.
package netutil

import (
	"fmt"
	"net"
)

// ValidateTLSMode checks how an upstream at host is to be reached: TLS
// from the first byte ("implicit"), STARTTLS ("starttls"), or "none",
// which only a loopback host may use: credentials and mail never cross a
// network in the clear. The error says what to fix.
func ValidateTLSMode(mode, host string) error {
	switch mode {
	case "implicit", "starttls":
		return nil
	case "none":
		if !IsLoopback(host) {
			return fmt.Errorf("tls \"none\" is allowed only for a loopback host, not %q: credentials and mail would cross the network in the clear", host)
		}
		return nil
	}
	return fmt.Errorf("tls must be \"implicit\", \"starttls\" or \"none\", got %q", mode)
}

// IsLoopback reports whether host names this machine: "localhost" or a
// loopback address (127.0.0.0/8, ::1). A name other than "localhost" is
// not looked up, and an empty or unspecified host ("", 0.0.0.0, ::) is
// not loopback: a listener there takes connections from every network.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
