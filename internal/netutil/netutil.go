// Package netutil holds the network rules that more than one package
// applies to settings it validates. It imports nothing of ours, so that
// config (which must stay a leaf) and smarthost can share it.
package netutil

import "net"

// IsLoopback reports whether host names this machine: "localhost" or a
// loopback address. Only such an upstream may be reached without TLS
// (tls "none"): credentials and mail never cross a network in the clear.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
