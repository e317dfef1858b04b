package route

import (
	"bytes"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"outbound/auth"
	"outbound/internal/testutil"
	"outbound/quota"
	"outbound/smarthost"
	"outbound/spf"
	"outbound/store"
)

var (
	defaultLimits = quota.Limits{PerHour: 2, PerDay: 20}
	ownLimits     = quota.Limits{PerHour: 50, PerDay: 500}
)

// rig is a Router over a real smarthost store in a temporary bbolt file.
type rig struct {
	*Router
	hosts *smarthost.Store
	log   *bytes.Buffer
}

func newRig(t *testing.T, def Default) *rig {
	t.Helper()
	hosts, err := smarthost.Open(store.Bolt(testutil.OpenDB(t)), filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	r, err := New(Options{Default: def, DefaultLimits: defaultLimits, OwnLimits: ownLimits, MaxPerDay: 10000,
		Smarthosts: hosts, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{Router: r, hosts: hosts, log: &log}
}

func (r *rig) add(t *testing.T, h smarthost.Smarthost, password string) {
	t.Helper()
	if h.Host == "" {
		h.Host, h.Port, h.TLS = "smtp."+h.Name+".example", 587, "starttls"
	}
	if _, err := r.hosts.Add(h, password); err != nil {
		t.Fatal(err)
	}
}

var sendgrid = Default{Host: "smtp.sendgrid.net", Port: 587, TLSMode: "starttls", Username: "apikey",
	Password: "SG.secret", SPFPolicy: spf.PolicyEnforce}

func TestDefaultRoute(t *testing.T) {
	r := newRig(t, sendgrid)
	up, err := r.Upstream("")
	if err != nil {
		t.Fatal(err)
	}
	if up.Name != "default" || up.Addr() != "smtp.sendgrid.net:587" || up.TLSMode != "starttls" ||
		up.Username != "apikey" || up.Password != "SG.secret" || up.RootCAs == nil || up.Fallback != nil {
		t.Fatalf("default upstream = %+v", up)
	}
	p := r.Policy(&auth.User{Name: "alice@example.com"})
	// The preset of the default route's host names it and gives its include.
	want := Policy{Limits: defaultLimits, SPF: spf.Identity{Name: "SendGrid", Include: "sendgrid.net"}, SPFPolicy: spf.PolicyEnforce}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policy = %+v, want %+v", p, want)
	}
}

func TestDefaultRouteOwnSPFIdentity(t *testing.T) {
	d := Default{Host: "mail.example.net", Port: 465, TLSMode: "implicit", SPFInclude: "_spf.example.net",
		SPFIPs: []string{"192.0.2.1"}, SPFPolicy: spf.PolicyWarn}
	p := newRig(t, d).Policy(&auth.User{Name: "alice@example.com"})
	want := Policy{Limits: defaultLimits, SPFPolicy: spf.PolicyWarn,
		SPF: spf.Identity{Name: "mail.example.net", Include: "_spf.example.net", IPs: []net.IP{net.ParseIP("192.0.2.1")}}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policy = %+v, want %+v", p, want)
	}
}

func TestOwnSmarthost(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "mg", Host: "smtp.eu.mailgun.org", Port: 465, TLS: "implicit", Username: "postmaster@example.com",
		SPFIPs: []string{"192.0.2.7"}, SPFPolicy: "warn"}, "mg-secret")
	up, err := r.Upstream("mg")
	if err != nil {
		t.Fatal(err)
	}
	if up.Name != "mg" || up.Addr() != "smtp.eu.mailgun.org:465" || up.TLSMode != "implicit" ||
		up.Username != "postmaster@example.com" || up.Password != "mg-secret" || up.RootCAs == nil {
		t.Fatalf("upstream = %+v", up)
	}
	p := r.Policy(&auth.User{Name: "app@example.com", Route: "mg"})
	want := Policy{Limits: ownLimits, SPFPolicy: spf.PolicyWarn,
		SPF: spf.Identity{Name: "Mailgun EU", Include: "_spf.eu.mailgun.org", IPs: []net.IP{net.ParseIP("192.0.2.7")}}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policy = %+v, want %+v", p, want)
	}
	// Without a policy of its own, the smarthost follows the default route's.
	r.add(t, smarthost.Smarthost{Name: "own", SPFInclude: "_spf.own.example"}, "")
	if p := r.Policy(&auth.User{Name: "b@example.com", Route: "own"}); p.SPFPolicy != spf.PolicyEnforce || p.SPF.Include != "_spf.own.example" {
		t.Fatalf("policy = %+v, want enforce from the default route, include _spf.own.example", p)
	}
}

// A route without any SPF identity cannot be checked against: its policy
// is "off", whatever is configured or overridden.
func TestNoSPFIdentityMeansPolicyOff(t *testing.T) {
	r := newRig(t, Default{Host: "127.0.0.1", Port: 2525, TLSMode: "none", SPFPolicy: spf.PolicyEnforce})
	r.add(t, smarthost.Smarthost{Name: "bare", SPFPolicy: "enforce"}, "")
	for _, u := range []*auth.User{
		{Name: "a@example.com"},
		{Name: "b@example.com", SPFPolicy: "enforce"},
		{Name: "c@example.com", Route: "bare"},
		{Name: "d@example.com", Route: "deleted"},
	} {
		if p := r.Policy(u); p.SPFPolicy != spf.PolicyOff {
			t.Errorf("user %+v: policy %q, want off", u, p.SPFPolicy)
		}
	}
	if p := r.Policy(&auth.User{Name: "d@example.com", Route: "deleted"}); p.SPF.Name != "deleted" || p.Limits != ownLimits {
		t.Errorf("user on a missing smarthost: %+v", p)
	}
}

func TestPerUserOverrides(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "mg", Host: "smtp.eu.mailgun.org", Port: 465, TLS: "implicit", SPFPolicy: "enforce"}, "")
	for _, route := range []string{"", "mg"} {
		own := quota.Limits{PerHour: 7, PerDay: 70}
		p := r.Policy(&auth.User{Name: "a@example.com", Route: route, Limits: &own, SPFPolicy: "warn"})
		if p.Limits != own || !p.LimitsOverridden || p.SPFPolicy != spf.PolicyWarn || !p.SPFPolicyOverridden {
			t.Errorf("route %q: policy %+v, want the user's 7/70 and warn, overridden", route, p)
		}
		p = r.Policy(&auth.User{Name: "a@example.com", Route: route})
		if p.LimitsOverridden || p.SPFPolicyOverridden || p.SPFPolicy != spf.PolicyEnforce {
			t.Errorf("route %q: policy %+v, want the route's, not overridden", route, p)
		}
	}
	// Limits of 0 are an override too: they suspend the user.
	if p := r.Policy(&auth.User{Name: "a@example.com", Limits: &quota.Limits{}}); p.Limits != (quota.Limits{}) || !p.LimitsOverridden {
		t.Errorf("zero override: %+v", p)
	}
}

func TestCeiling(t *testing.T) {
	r := newRig(t, sendgrid)
	for _, tc := range []struct {
		l    quota.Limits
		want string
	}{
		{quota.Limits{PerHour: 10000, PerDay: 10000}, ""},
		{quota.Limits{}, ""},
		{quota.Limits{PerHour: -1, PerDay: 5}, "limits must not be negative"},
		{quota.Limits{PerHour: 5, PerDay: -1}, "limits must not be negative"},
		{quota.Limits{PerHour: 5, PerDay: 10001}, "per_day 10001 exceeds the operator ceiling limits.max_per_day = 10000"},
		{quota.Limits{PerHour: 10001, PerDay: 5}, "per_hour 10001 exceeds the operator ceiling limits.max_per_day = 10000"},
	} {
		err := r.CheckLimits(tc.l)
		if (tc.want == "" && err != nil) || (tc.want != "" && (err == nil || err.Error() != tc.want)) {
			t.Errorf("CheckLimits(%+v) = %v, want %q", tc.l, err, tc.want)
		}
	}
}

func TestUnknownRouteIsAnError(t *testing.T) {
	r := newRig(t, sendgrid)
	_, err := r.Upstream("gone")
	if !errors.Is(err, smarthost.ErrNotFound) || !strings.Contains(err.Error(), "outbound user route") {
		t.Fatalf("Upstream of an unknown route = %v, want ErrNotFound saying how to fix it", err)
	}
	// A router without smarthosts (the CLI's) knows only the default route.
	bare, err := New(Options{Default: sendgrid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.Upstream("mg"); !errors.Is(err, smarthost.ErrNotFound) {
		t.Fatalf("Upstream without smarthosts = %v, want ErrNotFound", err)
	}
}

// Built upstreams are cached, yet a change to the smarthosts (a new
// password, a deletion) takes effect at the next call.
func TestUpstreamFollowsSmarthostChanges(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "mg", Username: "u"}, "old-password")
	first, _ := r.Upstream("mg")
	if again, _ := r.Upstream("mg"); again != first {
		t.Error("an unchanged smarthost was built again")
	}
	pw := "new-password"
	if err := r.hosts.Update("mg", &pw, nil); err != nil {
		t.Fatal(err)
	}
	if up, err := r.Upstream("mg"); err != nil || up.Password != "new-password" {
		t.Fatalf("after a password change: %+v, %v", up, err)
	}
	if err := r.hosts.Delete("mg", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Upstream("mg"); !errors.Is(err, smarthost.ErrNotFound) {
		t.Fatalf("after deletion: %v, want ErrNotFound", err)
	}
}

func TestFallback(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "third"}, "")
	r.add(t, smarthost.Smarthost{Name: "backup", Username: "b", Fallback: "third"}, "backup-secret")
	r.add(t, smarthost.Smarthost{Name: "primary", Fallback: "backup"}, "")
	up, err := r.Upstream("primary")
	if err != nil {
		t.Fatal(err)
	}
	fb := up.Fallback
	if fb == nil || fb.Name != "backup" || fb.Password != "backup-secret" || fb.Host != "smtp.backup.example" {
		t.Fatalf("fallback = %+v", fb)
	}
	if fb.Fallback != nil {
		t.Fatalf("the fallback's own fallback was followed: %+v", fb.Fallback)
	}
}

// A fallback that cannot be built costs only the failover: the smarthost
// is used without one, and that is logged.
func TestUnusableFallbackIsLoggedAndLeftOut(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "backup", CAFile: filepath.Join(t.TempDir(), "missing.pem")}, "")
	r.add(t, smarthost.Smarthost{Name: "primary", Fallback: "backup"}, "")
	up, err := r.Upstream("primary")
	if err != nil || up.Fallback != nil {
		t.Fatalf("Upstream = %+v, %v; want the primary without a fallback", up, err)
	}
	if log := r.log.String(); !strings.Contains(log, "fallback smarthost unusable") || !strings.Contains(log, "missing.pem") {
		t.Fatalf("log = %q", log)
	}
	// Logged once per change of the smarthosts, not per message.
	r.log.Reset()
	r.Upstream("primary")
	if r.log.Len() != 0 {
		t.Fatalf("logged again without a change: %q", r.log.String())
	}
}

// The default route's CA file is held to the same rules as a smarthost's,
// and a bad one stops the start naming default_route.ca_file.
func TestDefaultRouteCAFile(t *testing.T) {
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	d := sendgrid
	d.CAFile = testutil.WriteFile(t, dir, "ca.pem", ca.PEM)
	r, err := New(Options{Default: d})
	if err != nil {
		t.Fatal(err)
	}
	up, _ := r.Upstream("")
	leaf, err := x509.ParseCertificate(ca.Issue(t, "smtp.sendgrid.net").Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "smtp.sendgrid.net", Roots: up.RootCAs}); err != nil {
		t.Fatalf("the default route does not trust its CA file: %v", err)
	}

	for name, content := range map[string]string{
		"missing.pem": "",
		"empty.pem":   "no certificate here\n",
		"key.pem":     "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		d.CAFile = filepath.Join(dir, name)
		if content != "" {
			testutil.WriteFile(t, dir, name, []byte(content))
		}
		if _, err := New(Options{Default: d}); err == nil || !strings.HasPrefix(err.Error(), "default_route.ca_file "+d.CAFile) {
			t.Errorf("CA file %s: New = %v, want an error naming default_route.ca_file", name, err)
		}
	}
	d.CAFile = dir // a directory is not a CA file
	if _, err := New(Options{Default: d}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("CA file that is a directory: New = %v", err)
	}
}

// A smarthost a sender chose is dialed on public addresses only, and its
// owner travels with it, unless the operator allows private hosts.
func TestOwnedSmarthostUpstream(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "own-bob", Owner: "bob@example.com", PublicOnly: true}, "")
	r.add(t, smarthost.Smarthost{Name: "shared"}, "")
	up, err := r.Upstream("own-bob")
	if err != nil {
		t.Fatal(err)
	}
	if up.Owner != "bob@example.com" || !up.PublicOnly {
		t.Fatalf("owned upstream = %+v", up)
	}
	if up, _ := r.Upstream("shared"); up.Owner != "" || up.PublicOnly {
		t.Fatalf("shared upstream = %+v", up)
	}
	r.opts.AllowPrivateHosts = true
	r.hosts.Update("own-bob", nil, nil) // a change, so the cache is rebuilt
	if up, _ := r.Upstream("own-bob"); up.Owner != "bob@example.com" || up.PublicOnly {
		t.Fatalf("with allow_private_hosts: %+v", up)
	}
}

// A user's own SMTP server is named for people in the SPF identity (and so
// in the fix text of the SMTP reply and the web page), not by its internal
// smarthost name; a provider's name still wins.
func TestOwnSmarthostSPFIdentityName(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "own-bob_example.com", Owner: "bob@example.com", SPFInclude: "_spf.mail.example.org"}, "")
	r.add(t, smarthost.Smarthost{Name: "own-carol_example.com", Owner: "carol@example.com", Host: "smtp.eu.mailgun.org", Port: 465, TLS: "implicit"}, "")
	p := r.Policy(&auth.User{Name: "bob@example.com", Route: "own-bob_example.com"})
	if p.SPF.Name != "bob@example.com's own SMTP server" || p.SPF.Include != "_spf.mail.example.org" {
		t.Fatalf("SPF identity = %+v, want bob@example.com's own SMTP server", p.SPF)
	}
	if p := r.Policy(&auth.User{Name: "carol@example.com", Route: "own-carol_example.com"}); p.SPF.Name != "Mailgun EU" {
		t.Fatalf("SPF identity of an own server at a provider = %+v, want Mailgun EU", p.SPF)
	}
}

// The header fields a route's upstream rewrites come from its provider
// preset (Amazon SES: Message-ID and Date), for the relay's DKIM
// signature to leave out; a fallback's count too, since it may carry the
// message.
func TestPolicyRewritesFollowTheUpstreamsPreset(t *testing.T) {
	ses := Default{Host: "email-smtp.eu-west-1.amazonaws.com", Port: 587, TLSMode: "starttls"}
	r := newRig(t, ses)
	if p := r.Policy(&auth.User{Name: "a@example.com"}); !reflect.DeepEqual(p.Rewrites, []string{"Message-ID", "Date"}) {
		t.Errorf("default route on SES: rewrites %v", p.Rewrites)
	}
	r.add(t, smarthost.Smarthost{Name: "sg", Host: "smtp.sendgrid.net", Port: 587, TLS: "starttls"}, "")
	if p := r.Policy(&auth.User{Name: "b@example.com", Route: "sg"}); len(p.Rewrites) != 0 {
		t.Errorf("SendGrid smarthost: rewrites %v", p.Rewrites)
	}
	r.add(t, smarthost.Smarthost{Name: "aws", Host: "email-smtp.us-east-1.amazonaws.com", Port: 587, TLS: "starttls"}, "")
	r.add(t, smarthost.Smarthost{Name: "sg2", Host: "smtp.sendgrid.net", Port: 587, TLS: "starttls", Fallback: "aws"}, "")
	if p := r.Policy(&auth.User{Name: "c@example.com", Route: "sg2"}); !reflect.DeepEqual(p.Rewrites, []string{"Message-ID", "Date"}) {
		t.Errorf("SendGrid with an SES fallback: rewrites %v", p.Rewrites)
	}
	if p := newRig(t, sendgrid).Policy(&auth.User{Name: "d@example.com"}); len(p.Rewrites) != 0 {
		t.Errorf("default route on SendGrid: rewrites %v", p.Rewrites)
	}
}
