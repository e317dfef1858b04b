package doctor

import (
	"context"
	"fmt"
	"net"
)

// checkHostname looks Hostname up (A and AAAA) and compares the answer
// with this host's addresses. A host with only private addresses is
// behind NAT or a load balancer: then it cannot tell, and says so rather
// than fail.
func checkHostname(ctx context.Context, o *Options) Result {
	name := "hostname " + o.Hostname + " resolves to this host"
	publish := fmt.Sprintf("publish an A (and AAAA) record for %s with this host's public address", o.Hostname)
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ips, err := o.LookupIP(ctx, o.Hostname)
	if err != nil || len(ips) == 0 {
		detail := "no A or AAAA record"
		if err != nil {
			detail = err.Error()
		}
		return fail(name, detail, publish)
	}
	addrs, err := o.InterfaceAddrs()
	if err != nil {
		return pass(name, fmt.Sprintf("resolves to %v; cannot tell whether that is this host: %v", ips, err))
	}
	var public []net.IP
	for _, a := range addrs {
		ip := addrIP(a)
		if ip == nil {
			continue
		}
		for _, r := range ips {
			if r.Equal(ip) {
				return pass(name, fmt.Sprintf("resolves to %v, an address of this host", ips))
			}
		}
		if ip.IsGlobalUnicast() && !ip.IsPrivate() {
			public = append(public, ip)
		}
	}
	if len(public) == 0 {
		return pass(name, fmt.Sprintf("resolves to %v; cannot tell whether that is this host (no public address here: NAT or a load balancer)", ips))
	}
	return fail(name, fmt.Sprintf("resolves to %v, but this host's public addresses are %v", ips, public), publish)
}

func addrIP(a net.Addr) net.IP {
	switch v := a.(type) {
	case *net.IPNet:
		return v.IP
	case *net.IPAddr:
		return v.IP
	}
	return nil
}
