// Package doctor checks a running deployment the way a mail client, a
// receiving server and an attacker would see it, and says for each thing
// found wrong how to fix it. It knows nothing of the configuration file:
// cmd/outbound fills Options from it, so tests can point every check at
// real in-process servers and inject the network, DNS and filesystem.
package doctor

import (
	"context"
	"crypto/x509"
	"net"
	"time"

	"outbound/admin"
	"outbound/delivery"
)

// Result is one check's verdict.
type Result struct {
	// Name says what was checked ("certificate on 127.0.0.1:465").
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Detail is what was found, failing or not.
	Detail string `json:"detail"`
	// Fix is what to do; "" when OK.
	Fix string `json:"fix,omitempty"`
}

func pass(name, detail string) Result { return Result{Name: name, OK: true, Detail: detail} }

func fail(name, detail, fix string) Result {
	return Result{Name: name, Detail: detail, Fix: fix}
}

// API is the part of the admin API the checks read (admin.Client).
type API interface {
	Smarthosts() ([]admin.SmarthostView, error)
	TestSmarthost(name string) (*admin.SmarthostResult, error)
	Users() ([]admin.UserView, error)
	UserSPF(user string) (*admin.SPFReport, error)
	DKIMKeys(domain string) ([]admin.DKIMKey, error)
	TLS() (*admin.TLSStatus, error)
}

var _ API = (*admin.Client)(nil)

// Options describe the deployment to check. Unset functions are the real
// ones (the network, the system resolver, statfs).
type Options struct {
	// Hostname is the relay's public name: the certificate must be valid
	// for it and it should resolve to this host.
	Hostname string
	// ImplicitTLS and StartTLS are the submission listeners' addresses to
	// dial ("" when the listener is off).
	ImplicitTLS, StartTLS string
	// Roots verifies the listeners' certificate chain; nil: the system's
	// (the CLI adds [acme] ca_file, a private ACME CA's root).
	Roots *x509.CertPool
	// MinValidity is how long the certificate must still be valid (14
	// days when 0), so that a renewal that stopped is noticed in time.
	MinValidity time.Duration

	// HTTPListeners are the configured HTTP listeners besides the admin
	// one (provider webhooks, autoconfig, send API), each checked to
	// answer and, over HTTPS, to serve a trusted certificate.
	HTTPListeners []HTTPListener

	// AdminAddr is the admin listener's address to dial and AdminExposed
	// says it listens beyond loopback, where it must not speak plain HTTP.
	AdminAddr    string
	AdminExposed bool

	// DataDir holds the database and the secrets; KeyFiles are the files
	// that must be readable by their owner only (those missing are
	// skipped: a configured certificate has no data_dir/tls/key.pem).
	DataDir  string
	KeyFiles []string
	// UID is the user the files must belong to (the relay's).
	UID int
	// MinFree is the free space data_dir needs: bytes, or when
	// MinFreePercent is set, that share of the file system.
	MinFree        uint64
	MinFreePercent float64

	// API reaches the running relay for the smarthosts and users; nil
	// skips those checks (the admin API could not be reached, reported
	// by the caller).
	API API
	// DefaultRoute runs the default route's connection test; nil: the
	// relay has no default route.
	DefaultRoute func(ctx context.Context) delivery.ConnectionReport
	// DefaultRouteFrom names where DefaultRoute's settings were read (the
	// CLI: the configuration file, now). The relay reads [default_route]
	// when it starts, so the result says what was tested: a file edited
	// since is not what the running relay sends with. "": not said.
	DefaultRouteFrom string

	Now            func() time.Time
	Dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	LookupIP       func(ctx context.Context, host string) ([]net.IP, error)
	LookupTXT      func(ctx context.Context, name string) ([]string, error)
	InterfaceAddrs func() ([]net.Addr, error)
	Statfs         func(path string) (free, total uint64, err error)
	// Timeout bounds each network step (10s when 0).
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	if o.LookupIP == nil {
		o.LookupIP = func(ctx context.Context, host string) ([]net.IP, error) {
			return net.DefaultResolver.LookupIP(ctx, "ip", host)
		}
	}
	if o.LookupTXT == nil {
		o.LookupTXT = net.DefaultResolver.LookupTXT
	}
	if o.InterfaceAddrs == nil {
		o.InterfaceAddrs = net.InterfaceAddrs
	}
	if o.Statfs == nil {
		o.Statfs = statfs
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MinValidity == 0 {
		o.MinValidity = 14 * 24 * time.Hour
	}
}

// Run runs every check and returns their results in a fixed order:
// listeners and certificates (submission, then the other HTTP
// listeners), the certificate's renewal, the host name, routes, SPF, DKIM and DMARC,
// files, disk and the admin listener.
func Run(ctx context.Context, o Options) []Result {
	o.defaults()
	var out []Result
	if o.ImplicitTLS != "" {
		out = append(out, checkListener(ctx, &o, o.ImplicitTLS, false)...)
	}
	if o.StartTLS != "" {
		out = append(out, checkListener(ctx, &o, o.StartTLS, true)...)
	}
	for _, l := range o.HTTPListeners {
		out = append(out, checkHTTPListener(ctx, &o, l)...)
	}
	out = append(out, checkTLSStatus(&o)...)
	out = append(out, checkHostname(ctx, &o))
	out = append(out, checkRoutes(ctx, &o)...)
	spfResults, spfPass := checkSPF(&o)
	out = append(out, spfResults...)
	out = append(out, checkDKIM(ctx, &o, spfPass)...)
	out = append(out, checkFiles(&o)...)
	out = append(out, checkDisk(&o))
	out = append(out, checkAdmin(ctx, &o))
	return out
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return true
		}
	}
	return false
}
