// Package route decides, for each user, which upstream its mail leaves
// through and under which rules: the upstream itself (host, TLS,
// credentials, fallback), the user's sending limits, the SPF identity its
// senders' domains must authorize, and the SPF policy in force. The relay
// asks it for a user's Policy at MAIL, delivery for a message's Upstream
// at each attempt, the admin API for both and for the operator's ceiling.
//
// A user's route is the default route (auth.User.Route empty), configured
// in default_route, or a stored smarthost (package smarthost). Either may
// be the capture upstream (Upstream.Capture): the default route with
// default_route.mode = "capture", a smarthost of kind capture. Its rules:
//
//   - Limits: the user's own override (auth.User.Limits), else
//     Options.DefaultLimits on the default route (strict: the upstream is
//     shared) or Options.OwnLimits on its own smarthost. No limit may
//     exceed Options.MaxPerDay (CheckLimits).
//   - SPF identity: the default route's include and IPs, else its
//     provider preset's include; for a smarthost, its own include, else
//     its preset's (see smarthost.Smarthost.SPFIdentityInclude), and IPs.
//   - SPF policy: the user's own, else its smarthost's, else the default
//     route's; "off" whenever the upstream has no SPF identity at all,
//     since there is nothing to check against.
//
// # One type for limits
//
// A user's limits are quota.Limits everywhere: quota enforces them, auth
// stores a user's override in that form, this package derives the
// effective ones, admin shows them. The type lives in quota, not here,
// because auth and quota are storage owners and import nothing above
// them; this package imports both.
//
// Only cmd/outbound reads the configuration: it fills Options.
package route

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"outbound/auth"
	"outbound/provider"
	"outbound/quota"
	"outbound/smarthost"
	"outbound/spf"
)

// DefaultName is the default route's name in logs, the attempt history
// and the admin API. No smarthost may take it (smarthost.ValidateName).
const DefaultName = "default"

// Upstream is a route resolved for delivery: where to connect, how to
// secure the connection, and the credentials to present.
type Upstream struct {
	// Name identifies the upstream in logs and the attempt history
	// (DefaultName for the default route, else the smarthost's name).
	Name     string
	Host     string
	Port     int
	TLSMode  string // "implicit", "starttls" or "none" (loopback only; checked by config and smarthost)
	Username string
	// Password is the AUTH secret. It never appears in logs or errors.
	Password string
	// RootCAs verifies the upstream's certificate: the system roots plus
	// the route's CA file. nil means the system roots.
	RootCAs *x509.CertPool
	// Fallback, when set, takes an attempt this upstream cannot (see
	// package delivery). Only one level is followed: the fallback's own
	// Fallback is always nil.
	Fallback *Upstream
	// Owner is the user whose own SMTP server this is (smarthost.Owner),
	// "" for a shared one. Delivery shares connections and backoff only
	// between upstreams with the same owner: an authenticated connection
	// is never reused for someone who merely named the same host and
	// username, and one user's failing settings do not back off others.
	Owner string
	// PublicOnly makes delivery and the connection test connect only to
	// public addresses (netutil.PublicOnlyControl): a sender chose the
	// host (smarthost.PublicOnly) and the operator does not allow private
	// hosts.
	PublicOnly bool
	// Capture makes this the capture upstream: delivery hands the message
	// to the capture store (package capture) instead of dialling Host, and
	// records it delivered. Host is CaptureHost, for logs and DSNs.
	Capture bool
}

// CaptureHost is the capture upstream's Host in logs, the attempt history
// and DSNs' Remote-MTA.
const CaptureHost = "capture"

// Addr is the upstream's host:port.
func (u *Upstream) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// FromSmarthost builds the upstream of a stored (or about to be stored)
// smarthost, given its password in the clear, without its fallback, with
// PublicOnly as the smarthost has it (the caller clears it when the
// operator allows private hosts). The
// CA file is read and checked here (smarthost.RootCAs), so a smarthost
// whose file became unreadable fails at its next use; the error names the
// file. A smarthost of kind capture is the capture upstream under its own
// name: delivery keeps its mail in the capture store, dials nothing.
func FromSmarthost(h *smarthost.Smarthost, password string) (*Upstream, error) {
	if h.Captures() {
		return &Upstream{Name: h.Name, Host: CaptureHost, Capture: true, Owner: h.Owner}, nil
	}
	roots, err := smarthost.RootCAs(h.CAFile)
	if err != nil {
		return nil, err
	}
	return &Upstream{Name: h.Name, Host: h.Host, Port: h.Port, TLSMode: h.TLS,
		Username: h.Username, Password: password, RootCAs: roots, Owner: h.Owner, PublicOnly: h.PublicOnly}, nil
}

// Default is the default route as configured (default_route).
type Default struct {
	Host     string
	Port     int
	TLSMode  string
	Username string
	// Password is the AUTH secret, already read from its file if that is
	// how it is configured.
	Password string
	// CAFile, when set, is a PEM file of CAs trusted besides the system
	// roots, held to the same rules as a smarthost's (smarthost.RootCAs).
	CAFile string
	// SPFInclude and SPFIPs are the upstream's SPF identity; an empty
	// include means the provider preset's, when Host is a known provider.
	SPFInclude string
	SPFIPs     []string
	// SPFPolicy applies to users on the default route and to smarthosts
	// without a policy of their own.
	SPFPolicy spf.Policy
	// Capture makes the default route the capture upstream
	// (default_route.mode = "capture"): mail goes through the whole
	// pipeline and is kept in the capture store, never sent. Host and the
	// rest are then ignored, and SPF is off: nothing leaves.
	Capture bool
}

// Identity is the default route's SPF identity: what a sender domain's
// SPF record must authorize for mail that leaves through it.
func (d Default) Identity() spf.Identity {
	if d.Capture {
		return spf.Identity{Name: CaptureHost}
	}
	id := spf.Identity{Name: d.Host, Include: d.SPFInclude, IPs: parseIPs(d.SPFIPs)}
	if p, ok := provider.ForHost(d.Host); ok {
		id.Name = p.Title
		if id.Include == "" {
			id.Include = p.SPFInclude
		}
	}
	return id
}

func parseIPs(list []string) []net.IP {
	var ips []net.IP
	for _, s := range list {
		ips = append(ips, net.ParseIP(s)) // validated by config and smarthost
	}
	return ips
}

// Smarthosts is the stored smarthosts as the router reads them (package
// smarthost).
type Smarthosts interface {
	Get(name string) (*smarthost.Smarthost, error)
	// Password returns the smarthost's password in the clear.
	Password(name string) (string, error)
	// Version changes whenever a smarthost changes (or the key rotates).
	Version() uint64
}

var _ Smarthosts = (*smarthost.Store)(nil)

// Options configures a Router. It is plain data: cmd/outbound fills it
// from the configuration.
type Options struct {
	Default Default
	// DefaultLimits are the limits of users on the default route,
	// OwnLimits those of users with a smarthost of their own, unless a
	// user has its own (auth.User.Limits).
	DefaultLimits quota.Limits
	OwnLimits     quota.Limits
	// MaxPerDay is the operator's ceiling (limits.max_per_day) for any
	// limit set on a user.
	MaxPerDay int
	// Smarthosts are the stored smarthosts; nil knows only the default route.
	Smarthosts Smarthosts
	// Logger reports fallbacks that cannot be used; nil discards.
	Logger *slog.Logger
	// AllowPrivateHosts lets delivery connect to the smarthosts senders
	// chose (smarthost.PublicOnly) on any address (web.allow_private_hosts).
	AllowPrivateHosts bool
}

// Router answers the routing questions. It is safe for concurrent use.
type Router struct {
	opts   Options
	def    *Upstream
	defSPF spf.Identity

	// The upstreams built from smarthosts (decrypted password, certificate
	// pool) are cached until the smarthosts change, so that delivery
	// neither decrypts nor reads CA files per message, yet an updated
	// password or a deleted smarthost takes effect at the next attempt.
	mu      sync.Mutex
	version uint64
	cache   map[string]*Upstream
}

// New builds a Router. It reads the default route's CA file now, so that
// a bad one stops the start, with an error naming default_route.ca_file.
func New(opts Options) (*Router, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := opts.Default
	if d.Capture {
		r := &Router{opts: opts, defSPF: d.Identity(), cache: map[string]*Upstream{}}
		r.def = &Upstream{Name: DefaultName, Host: CaptureHost, Capture: true}
		return r, nil
	}
	roots, err := smarthost.RootCAs(d.CAFile)
	if err != nil {
		return nil, fmt.Errorf("default_route.%w", err) // "default_route.ca_file <path> ..."
	}
	r := &Router{opts: opts, defSPF: d.Identity(), cache: map[string]*Upstream{}}
	r.def = &Upstream{Name: DefaultName, Host: d.Host, Port: d.Port, TLSMode: d.TLSMode,
		Username: d.Username, Password: d.Password, RootCAs: roots}
	return r, nil
}

// Upstream resolves a message's route ("" is the default route, anything
// else a smarthost's name) to the upstream delivery sends through. A route
// that names no smarthost is an error, which delivery treats as temporary:
// the message waits rather than leave through the wrong upstream.
//
// A smarthost's fallback is built with it, one level deep (the fallback's
// own fallback is not followed, so fallbacks cannot loop). A fallback that
// cannot be built (deleted, undecryptable password, unreadable CA file)
// costs only the failover: the smarthost is used without one, and the
// problem is logged once per change of the smarthosts.
func (r *Router) Upstream(name string) (*Upstream, error) {
	if name == "" {
		return r.def, nil
	}
	if r.opts.Smarthosts == nil {
		return nil, fmt.Errorf("route %q: %w: no smarthosts are known here", name, smarthost.ErrNotFound)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Read the version before the smarthost: a change in between makes
	// the next call rebuild, never keeps a stale entry.
	if v := r.opts.Smarthosts.Version(); v != r.version {
		clear(r.cache)
		r.version = v
	}
	if up, ok := r.cache[name]; ok {
		return up, nil
	}
	h, err := r.opts.Smarthosts.Get(name)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w: add the smarthost again or move its users with `outbound user route`", name, err)
	}
	up, err := r.build(h)
	if err != nil {
		return nil, err
	}
	if h.Fallback != "" {
		fb, err := r.opts.Smarthosts.Get(h.Fallback)
		if err == nil {
			up.Fallback, err = r.build(fb)
		}
		if err != nil {
			// Cached without the fallback: logged again only after a change.
			r.opts.Logger.Warn("fallback smarthost unusable; delivering without failover", "smarthost", name, "fallback", h.Fallback, "err", err)
		}
	}
	r.cache[name] = up
	return up, nil
}

// build makes the upstream of a stored smarthost, without its fallback.
func (r *Router) build(h *smarthost.Smarthost) (*Upstream, error) {
	password, err := r.opts.Smarthosts.Password(h.Name)
	if err != nil {
		return nil, err
	}
	up, err := FromSmarthost(h, password)
	if err != nil {
		return nil, fmt.Errorf("smarthost %s: %w", h.Name, err)
	}
	if r.opts.AllowPrivateHosts {
		up.PublicOnly = false
	}
	return up, nil
}

// Policy is what the relay and the admin API must know about a user's
// route besides the upstream itself.
type Policy struct {
	// Limits are the user's sending limits in force.
	Limits quota.Limits
	// LimitsOverridden says Limits are the user's own, not its route's.
	LimitsOverridden bool
	// SPF is the SPF identity of the upstream the user's mail leaves through.
	SPF spf.Identity
	// SPFPolicy is what the relay does when a sender domain does not
	// authorize SPF.
	SPFPolicy spf.Policy
	// SPFPolicyOverridden says the user has a policy of its own
	// (auth.User.SPFPolicy); SPFPolicy is still "off" when SPF has no
	// identity to check.
	SPFPolicyOverridden bool
	// Rewrites are the header fields the route's upstream (or its
	// fallback, which may carry the message instead) replaces, from its
	// provider preset: the relay's DKIM signature leaves them out.
	Rewrites []string
}

// Policy returns u's limits and SPF settings, from u as given (the
// caller reads it fresh) and the smarthost it is routed through now. A
// smarthost that cannot be read counts as one without an SPF identity:
// its mail waits in delivery anyway.
func (r *Router) Policy(u *auth.User) Policy {
	p := Policy{SPF: r.defSPF, SPFPolicy: r.opts.Default.SPFPolicy, Limits: r.opts.DefaultLimits,
		Rewrites: r.defaultRewrites()}
	if u.Route != "" {
		p.Limits = r.opts.OwnLimits
		p.SPF = spf.Identity{Name: u.Route}
		p.Rewrites = nil
		if h, err := r.smarthost(u.Route); err == nil {
			p.Rewrites = rewrites(h.Host)
			if h.Fallback != "" {
				if fb, err := r.smarthost(h.Fallback); err == nil {
					p.Rewrites = append(p.Rewrites, rewrites(fb.Host)...)
				}
			}
			p.SPF.Include, p.SPF.Name = h.SPFIdentityInclude()
			if h.Owner != "" && p.SPF.Name == h.Name {
				// A user's own SMTP server is named "own-" and the login
				// inside; the fix text that goes to people (the SMTP
				// reply, the web page) names it as they know it.
				p.SPF.Name = OwnServerName(h.Owner)
			}
			p.SPF.IPs = parseIPs(h.SPFIPs)
			if h.SPFPolicy != "" {
				p.SPFPolicy = spf.Policy(h.SPFPolicy)
			}
		}
	}
	if u.Limits != nil {
		p.Limits, p.LimitsOverridden = *u.Limits, true
	}
	if u.SPFPolicy != "" {
		p.SPFPolicy, p.SPFPolicyOverridden = spf.Policy(u.SPFPolicy), true
	}
	if p.SPF.Include == "" && len(p.SPF.IPs) == 0 {
		p.SPFPolicy = spf.PolicyOff // nothing to check against
	}
	return p
}

// defaultRewrites are the header fields the default route's upstream
// replaces; none for capture, which keeps the message as it is.
func (r *Router) defaultRewrites() []string {
	if r.opts.Default.Capture {
		return nil
	}
	return rewrites(r.opts.Default.Host)
}

// rewrites are the header fields the provider at host replaces, if
// host is a known provider's.
func rewrites(host string) []string {
	if p, ok := provider.ForHost(host); ok {
		return p.Rewrites
	}
	return nil
}

// OwnServerName is how people are told about user's own SMTP server
// (the web interface's "E-mail settings → Own SMTP server"): its
// smarthost's name is internal.
func OwnServerName(user string) string { return user + "'s own SMTP server" }

func (r *Router) smarthost(name string) (*smarthost.Smarthost, error) {
	if r.opts.Smarthosts == nil {
		return nil, smarthost.ErrNotFound
	}
	return r.opts.Smarthosts.Get(name)
}

// CheckLimits checks limits an operator wants to set on a user: neither
// negative nor above the ceiling. The error names the setting.
func (r *Router) CheckLimits(l quota.Limits) error {
	switch {
	case l.PerHour < 0 || l.PerDay < 0:
		return errors.New("limits must not be negative")
	case l.PerDay > r.opts.MaxPerDay:
		return fmt.Errorf("per_day %d exceeds the operator ceiling limits.max_per_day = %d", l.PerDay, r.opts.MaxPerDay)
	case l.PerHour > r.opts.MaxPerDay:
		return fmt.Errorf("per_hour %d exceeds the operator ceiling limits.max_per_day = %d", l.PerHour, r.opts.MaxPerDay)
	}
	return nil
}
