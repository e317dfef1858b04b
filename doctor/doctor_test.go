package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/admin"
	"outbound/delivery"
	"outbound/dkim"
	"outbound/internal/admintest"
	"outbound/internal/dnstest"
	"outbound/internal/testutil"
	"outbound/smarthost"
	"outbound/spf"
	"outbound/store"
)

// refuseBackend is a submission server that greets, offers STARTTLS and
// refuses everything else: all the checks need of a listener.
type refuseBackend struct{}

func (refuseBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return refuseSession{}, nil }

type refuseSession struct{}

var errRefused = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "no"}

func (refuseSession) Mail(string, *smtp.MailOptions) error { return errRefused }
func (refuseSession) Rcpt(string, *smtp.RcptOptions) error { return errRefused }
func (refuseSession) Data(io.Reader) error                 { return errRefused }
func (refuseSession) Reset()                               {}
func (refuseSession) Logout() error                        { return nil }

// startListeners serves cert on an implicit-TLS and a STARTTLS listener
// on loopback, as the relay's 465 and 587, and returns their addresses.
func startListeners(t *testing.T, cert tls.Certificate) (implicit, starttls string) {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true}
	serve := func(l net.Listener, tlsCfg *tls.Config) {
		srv := smtp.NewServer(refuseBackend{})
		srv.Domain = "relay.test"
		srv.TLSConfig = tlsCfg
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
	l1, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	serve(l1, nil)
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(l2, cfg)
	return l1.Addr().String(), l2.Addr().String()
}

// startHTTPS serves 404s over HTTPS with cert on loopback, as the relay's
// provider-webhook or autoconfig listener off loopback, and returns its
// address.
func startHTTPS(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// A probe that fails the handshake makes the server log it.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// zone publishes SPF for example.org (authorizing the rig's default
// route, _spf.example.net) and a wrong one for example.com.
const zone = `$TTL 300
example.org. TXT "v=spf1 include:_spf.example.net -all"
example.com. TXT "v=spf1 ip4:203.0.113.9 -all"
_spf.example.net. TXT "v=spf1 ip4:192.0.2.1 -all"
`

// healthy is a deployment where every check passes: a certificate of a
// trusted CA for relay.test on both listeners, relay.test resolving to
// this host, a passing smarthost, a sender domain whose SPF authorizes
// the default route, private files, room on disk and the admin listener
// in HTTPS. Tests break one part each.
func healthy(t *testing.T) (Options, *admintest.Rig) {
	t.Helper()
	ca := testutil.NewCA(t)
	implicit, starttls := startListeners(t, ca.Issue(t, "relay.test"))
	dns := dnstest.Start(t, zone)
	resolver, err := spf.NewResolver([]string{dns.Addr()}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	keys := dkimStore(t)
	tlsStatus := admin.TLSStatus{Source: "acme", Names: []string{"relay.test"}, Issuer: "outbound test CA",
		NotAfter: time.Now().Add(24 * time.Hour)}
	rig := admintest.NewWith(t, func(o *admin.Options) {
		o.SPF = &spf.Checker{Resolver: resolver}
		o.DKIM = keys
		o.TLS = func() admin.TLSStatus { return tlsStatus }
	})
	rig.AddSmarthost(t, "sendgrid")
	if _, err := rig.Client.CreateUser(admin.CreateUserRequest{Name: "alice@example.org", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Client.GenerateDKIM("example.org", admin.DKIMKeyRequest{Selector: "s1", Algorithm: "ed25519"}); err != nil {
		t.Fatal(err)
	}
	published, err := rig.Client.DKIMKeys("example.org")
	if err != nil || len(published) != 1 {
		t.Fatalf("DKIM keys: %v %v", published, err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	token := testutil.WriteFile(t, data, "admin.token", []byte("secret"))
	if err := os.Chmod(token, 0o600); err != nil {
		t.Fatal(err)
	}
	adminSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	// The plain-HTTP probe makes the server log a handshake error.
	adminSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	adminSrv.StartTLS()
	t.Cleanup(adminSrv.Close)
	autoconfigSrv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(autoconfigSrv.Close)
	return Options{
		Hostname: "relay.test", ImplicitTLS: implicit, StartTLS: starttls,
		Roots: ca.Pool,
		// The test CA's certificates live a day.
		MinValidity: time.Hour,
		AdminAddr:   adminSrv.Listener.Addr().String(), AdminExposed: true,
		HTTPListeners: []HTTPListener{
			{Section: "provider_webhooks", Addr: startHTTPS(t, ca.Issue(t, "relay.test")), TLS: true},
			{Section: "autoconfig", Addr: autoconfigSrv.Listener.Addr().String()},
		},
		DataDir: data, KeyFiles: []string{token, filepath.Join(data, "secrets.key")}, UID: os.Getuid(),
		MinFree: 1 << 30,
		API:     rig.Client,
		LookupIP: func(ctx context.Context, host string) ([]net.IP, error) {
			if host != "relay.test" {
				return nil, errors.New("NXDOMAIN")
			}
			return []net.IP{net.ParseIP("198.51.100.7")}, nil
		},
		InterfaceAddrs: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.ParseIP("198.51.100.7"), Mask: net.CIDRMask(24, 32)}}, nil
		},
		Statfs: func(string) (uint64, uint64, error) { return 50 << 30, 100 << 30, nil },
		// The DKIM key and DMARC record as published.
		LookupTXT: txtLookup(t, zone+published[0].RecordName+". TXT "+txt(published[0].Record)+"\n"+
			`_dmarc.example.org. TXT "v=DMARC1; p=none"`+"\n"),
	}, rig
}

// dkimStore is a DKIM key store in its own bbolt file.
func dkimStore(t *testing.T) *dkim.Store {
	t.Helper()
	db := testutil.OpenDB(t)
	hosts, err := smarthost.Open(store.Bolt(db), filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := dkim.Open(store.Bolt(db), hosts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// txtLookup resolves TXT records through a DNS server serving zone.
func txtLookup(t *testing.T, zone string) func(context.Context, string) ([]string, error) {
	srv := dnstest.Start(t, zone)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
	}}
	return r.LookupTXT
}

// txt quotes a record value in zone syntax, split in 255-byte strings.
func txt(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, strconv.Quote(v[:255]))
		v = v[255:]
	}
	return strings.Join(append(parts, strconv.Quote(v)), " ")
}

// failures returns the failed results whose name contains substr.
func failures(rs []Result, substr string) []Result {
	var out []Result
	for _, r := range rs {
		if !r.OK && strings.Contains(r.Name, substr) {
			out = append(out, r)
		}
	}
	return out
}

// onlyFailure asserts that exactly the checks named with substr failed,
// each with a fix containing fix.
func onlyFailure(t *testing.T, rs []Result, substr, fix string) {
	t.Helper()
	got := failures(rs, substr)
	if len(got) == 0 {
		t.Fatalf("no failed check named %q in %+v", substr, rs)
	}
	for _, r := range rs {
		if !r.OK && !strings.Contains(r.Name, substr) {
			t.Errorf("unexpected failure: %+v", r)
		}
	}
	for _, r := range got {
		if !strings.Contains(r.Fix, fix) {
			t.Errorf("%s: fix %q, want it to say %q", r.Name, r.Fix, fix)
		}
	}
}

func TestHealthySetupPasses(t *testing.T) {
	o, _ := healthy(t)
	rs := Run(context.Background(), o)
	for _, r := range rs {
		if !r.OK {
			t.Errorf("failed: %+v", r)
		}
	}
	if Failed(rs) {
		t.Error("Failed says a check failed")
	}
	for _, want := range []string{"listener " + o.ImplicitTLS, "listener " + o.StartTLS, "certificate on " + o.StartTLS,
		"listener " + o.HTTPListeners[0].Addr + " ([provider_webhooks] listen, HTTPS)", "certificate on " + o.HTTPListeners[0].Addr,
		"listener " + o.HTTPListeners[1].Addr + " ([autoconfig] listen, plain HTTP on loopback)",
		"smarthost sendgrid", "SPF of example.org", "DKIM key s1._domainkey.example.org", "DMARC alignment of example.org", "certificate renewal", "permissions of " + o.DataDir, "free space", "admin listener"} {
		if len(findAll(rs, want)) == 0 {
			t.Errorf("no check named %q in %+v", want, rs)
		}
	}
}

func findAll(rs []Result, substr string) []Result {
	var out []Result
	for _, r := range rs {
		if strings.Contains(r.Name, substr) {
			out = append(out, r)
		}
	}
	return out
}

func TestExpiredCertificate(t *testing.T) {
	o, _ := healthy(t)
	// The test CA's certificate, two days later: expired.
	o.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	rs := Run(context.Background(), o)
	onlyFailure(t, rs, "certificate on", "renew the certificate")
	// 465, 587 and the provider-webhook listener's HTTPS.
	if got := failures(rs, "certificate on"); len(got) != 3 || !strings.Contains(got[0].Detail, "expired") ||
		got[2].Name != "certificate on "+o.HTTPListeners[0].Addr {
		t.Errorf("want the three listeners' certificate expired, got %+v", got)
	}
}

func TestCertificateExpiringSoon(t *testing.T) {
	o, _ := healthy(t)
	o.MinValidity = 14 * 24 * time.Hour
	onlyFailure(t, Run(context.Background(), o), "certificate on", "renew the certificate now")
}

func TestCertificateForAnotherName(t *testing.T) {
	o, _ := healthy(t)
	o.Hostname = "mail.example.org"
	o.LookupIP = func(context.Context, string) ([]net.IP, error) { return []net.IP{net.ParseIP("198.51.100.7")}, nil }
	onlyFailure(t, Run(context.Background(), o), "certificate on", "covering mail.example.org")
}

func TestSelfSignedCertificate(t *testing.T) {
	o, _ := healthy(t)
	cert := selfSigned(t, "relay.test")
	o.ImplicitTLS, o.StartTLS = startListeners(t, cert)
	onlyFailure(t, Run(context.Background(), o), "certificate on", "configure [tls] cert/key or [acme]")
}

func TestListenerDown(t *testing.T) {
	o, _ := healthy(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.StartTLS = l.Addr().String()
	l.Close()
	rs := Run(context.Background(), o)
	if got := failures(rs, o.StartTLS); len(got) != 2 || !strings.Contains(got[0].Fix, "starttls") {
		t.Errorf("want the listener and its certificate failed, naming [submission] starttls: %+v", got)
	}
}

// The provider-webhook listener off loopback serves HTTPS with the
// relay's certificate: a self-signed one is what providers refuse.
func TestHTTPSListenerSelfSigned(t *testing.T) {
	o, _ := healthy(t)
	o.HTTPListeners[0].Addr = startHTTPS(t, selfSigned(t, "relay.test"))
	onlyFailure(t, Run(context.Background(), o), "certificate on "+o.HTTPListeners[0].Addr, "configure [tls] cert/key or [acme]")
}

// A listener that should speak HTTPS but answers plain HTTP fails the
// handshake; its certificate is then not checked.
func TestHTTPSListenerSpeakingPlainHTTP(t *testing.T) {
	o, _ := healthy(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	o.HTTPListeners[0].Addr = plain.Listener.Addr().String()
	rs := Run(context.Background(), o)
	onlyFailure(t, rs, plain.Listener.Addr().String(), "")
	got := failures(rs, plain.Listener.Addr().String())
	if len(got) != 2 || !strings.Contains(got[0].Detail, "TLS handshake") ||
		!strings.Contains(got[0].Fix, "[provider_webhooks] listen") || !strings.Contains(got[1].Detail, "not checked") {
		t.Errorf("want the handshake failed, naming [provider_webhooks] listen, and the certificate not checked: %+v", got)
	}
}

func TestLoopbackHTTPListenerDown(t *testing.T) {
	o, _ := healthy(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.HTTPListeners[1].Addr = l.Addr().String()
	l.Close()
	rs := Run(context.Background(), o)
	onlyFailure(t, rs, "listener "+o.HTTPListeners[1].Addr, "check [autoconfig] listen")
	if got := failures(rs, o.HTTPListeners[1].Addr); len(got) != 1 || !strings.Contains(got[0].Detail, "cannot connect") {
		t.Errorf("want one failure, the connection (plain HTTP has no certificate): %+v", got)
	}
}

func TestWrongSPF(t *testing.T) {
	o, rig := healthy(t)
	if _, err := rig.Client.CreateUser(admin.CreateUserRequest{Name: "bob@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	rs := Run(context.Background(), o)
	// Its DMARC alignment fails too: no DKIM key aligns it either.
	onlyFailure(t, rs, "example.com", "example.com")
	got := failures(rs, "SPF of example.com")
	if len(got) != 1 || !strings.Contains(got[0].Fix, "include:_spf.example.net") || !strings.Contains(got[0].Detail, "ip4:203.0.113.9") {
		t.Errorf("want the fix with the include to add and the published record: %+v", got)
	}
}

// The default route is tested with the configuration file's settings,
// which a relay started before an edit does not use: the result says so,
// passing or not.
func TestDefaultRouteSaysItTestedTheFile(t *testing.T) {
	o, _ := healthy(t)
	o.DefaultRouteFrom = "/etc/outbound.toml"
	report := delivery.ConnectionReport{OK: true, Target: "smtp.example.net:587"}
	o.DefaultRoute = func(context.Context) delivery.ConnectionReport { return report }
	r := findAll(Run(context.Background(), o), "default route")
	if len(r) != 1 || !r[0].OK || r[0].Name != "default route" ||
		!strings.Contains(r[0].Detail, "tested with [default_route] as /etc/outbound.toml has it now: a relay started before the file was last edited sends with the settings it started with") {
		t.Errorf("passing: %+v", r)
	}

	report = delivery.ConnectionReport{Target: "smtp.example.net:587",
		Steps: []delivery.ConnectionStep{{Name: "connect", Status: "failed", Error: "connection refused"}}}
	rs := Run(context.Background(), o)
	onlyFailure(t, rs, "default route", "fix [default_route] in the configuration")
	if r := failures(rs, "default route"); !strings.Contains(r[0].Detail, "connection refused") ||
		!strings.Contains(r[0].Detail, "as /etc/outbound.toml has it now") {
		t.Errorf("failing: %+v", r)
	}
}

func TestUnreachableSmarthost(t *testing.T) {
	o, rig := healthy(t)
	rig.Upstream.Close()
	onlyFailure(t, Run(context.Background(), o), "smarthost sendgrid", "outbound smarthost update sendgrid")
}

func TestWorldReadableKeyFile(t *testing.T) {
	o, _ := healthy(t)
	if err := os.Chmod(o.KeyFiles[0], 0o644); err != nil {
		t.Fatal(err)
	}
	onlyFailure(t, Run(context.Background(), o), "permissions of "+o.KeyFiles[0], "chmod 0600 "+o.KeyFiles[0])
}

func TestOpenDataDir(t *testing.T) {
	o, _ := healthy(t)
	if err := os.Chmod(o.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	onlyFailure(t, Run(context.Background(), o), "permissions of "+o.DataDir, "chmod 0700")
}

func TestFilesOfAnotherUser(t *testing.T) {
	o, _ := healthy(t)
	o.UID = os.Getuid() + 1
	onlyFailure(t, Run(context.Background(), o), "permissions of", "chown")
}

func TestLowDisk(t *testing.T) {
	o, _ := healthy(t)
	o.Statfs = func(string) (uint64, uint64, error) { return 100 << 20, 100 << 30, nil }
	onlyFailure(t, Run(context.Background(), o), "free space", "free space on that file system")

	o.MinFree, o.MinFreePercent = 0, 5
	o.Statfs = func(string) (uint64, uint64, error) { return 4 << 30, 100 << 30, nil }
	onlyFailure(t, Run(context.Background(), o), "free space", "free space on that file system")
}

func TestHostnameNotResolving(t *testing.T) {
	o, _ := healthy(t)
	o.LookupIP = func(context.Context, string) ([]net.IP, error) { return nil, errors.New("no such host") }
	onlyFailure(t, Run(context.Background(), o), "hostname", "publish an A")
}

func TestHostnameElsewhere(t *testing.T) {
	o, _ := healthy(t)
	o.LookupIP = func(context.Context, string) ([]net.IP, error) { return []net.IP{net.ParseIP("203.0.113.1")}, nil }
	onlyFailure(t, Run(context.Background(), o), "hostname", "publish an A")
}

func TestHostnameBehindNATCannotTell(t *testing.T) {
	o, _ := healthy(t)
	o.InterfaceAddrs = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("10.0.0.5"), Mask: net.CIDRMask(8, 32)}}, nil
	}
	rs := Run(context.Background(), o)
	h := findAll(rs, "hostname")
	if len(h) != 1 || !h[0].OK || !strings.Contains(h[0].Detail, "cannot tell") {
		t.Errorf("want a pass that cannot tell, got %+v", h)
	}
}

func TestAdminInPlainHTTP(t *testing.T) {
	o, _ := healthy(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	o.AdminAddr = plain.Listener.Addr().String()
	onlyFailure(t, Run(context.Background(), o), "admin listener", "serve it over HTTPS")

	o.AdminExposed = false // on loopback plain HTTP is the rule
	if rs := Run(context.Background(), o); Failed(rs) {
		t.Errorf("plain HTTP on loopback failed: %+v", failures(rs, ""))
	}
}

func TestDKIMRecordOfAnotherKey(t *testing.T) {
	o, _ := healthy(t)
	o.LookupTXT = txtLookup(t, zone+"s1._domainkey.example.org. TXT \"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n"+
		`_dmarc.example.org. TXT "v=DMARC1; p=none"`+"\n")
	rs := Run(context.Background(), o)
	onlyFailure(t, rs, "DKIM key s1._domainkey.example.org", "replace it: publish TXT s1._domainkey.example.org: v=DKIM1; k=ed25519; p=")
	// Without a matching key only SPF aligns it: DMARC still passes.
	if d := findAll(rs, "DMARC"); len(d) != 1 || !d[0].OK || strings.Contains(d[0].Detail, "DKIM") {
		t.Errorf("DMARC: %+v", d)
	}
}

func TestDKIMRecordMissing(t *testing.T) {
	o, _ := healthy(t)
	o.LookupTXT = txtLookup(t, zone+`_dmarc.example.org. TXT "v=DMARC1; p=none"`+"\n")
	onlyFailure(t, Run(context.Background(), o), "DKIM key", "publish TXT s1._domainkey.example.org")
}

// A domain whose keys exist but are not published yet is told to publish
// them: keygen again would be refused (the selector is in use) or make a
// second set of keys.
func TestDMARCUnalignedWithUnpublishedKey(t *testing.T) {
	o, rig := healthy(t)
	if _, err := rig.Client.CreateUser(admin.CreateUserRequest{Name: "bob@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Client.GenerateDKIM("example.com", admin.DKIMKeyRequest{Selector: "s1", Algorithm: "ed25519"}); err != nil {
		t.Fatal(err)
	}
	rs := Run(context.Background(), o)
	if k := failures(rs, "DKIM key s1._domainkey.example.com"); len(k) != 1 || !strings.Contains(k[0].Fix, "publish TXT s1._domainkey.example.com") {
		t.Errorf("want the unpublished key reported with its record: %+v", k)
	}
	d := failures(rs, "DMARC alignment of example.com")
	if len(d) != 1 || !strings.Contains(d[0].Fix, "publish the DKIM records (`outbound dkim records example.com`") ||
		strings.Contains(d[0].Fix, "keygen") {
		t.Errorf("want the fix to publish the existing keys, not to make new ones: %+v", d)
	}
}

func TestDMARCUnaligned(t *testing.T) {
	o, rig := healthy(t)
	// bob's domain has a wrong SPF and no DKIM key: nothing aligns it.
	if _, err := rig.Client.CreateUser(admin.CreateUserRequest{Name: "bob@example.com", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	rs := Run(context.Background(), o)
	d := failures(rs, "DMARC alignment of example.com")
	if len(d) != 1 || !strings.Contains(d[0].Fix, "outbound dkim keygen example.com") {
		t.Errorf("want example.com unaligned with the keygen fix: %+v", rs)
	}
	if ok := findAll(rs, "DMARC alignment of example.org"); len(ok) != 1 || !ok[0].OK ||
		!strings.Contains(ok[0].Detail, "DKIM (selector s1)") || !strings.Contains(ok[0].Detail, "SPF") {
		t.Errorf("example.org: %+v", ok)
	}
}

func TestDMARCRecordMissing(t *testing.T) {
	o, rig := healthy(t)
	recs, err := rig.Client.DKIMKeys("example.org")
	if err != nil {
		t.Fatal(err)
	}
	o.LookupTXT = txtLookup(t, zone+recs[0].RecordName+". TXT "+txt(recs[0].Record)+"\n")
	onlyFailure(t, Run(context.Background(), o), "DMARC alignment of example.org", "publish TXT _dmarc.example.org: v=DMARC1;")
}

func TestNoDKIMOnTheRelay(t *testing.T) {
	o, _ := healthy(t)
	rig := admintest.New(t) // DKIM unset: /api/dkim answers 501
	o.API = rig.Client
	if rs := Run(context.Background(), o); Failed(rs) || len(findAll(rs, "DKIM key")) != 0 {
		t.Errorf("a relay without DKIM: %+v", rs)
	}
}

func TestCertificateRenewalFailing(t *testing.T) {
	o, _ := healthy(t)
	rig := admintest.NewWith(t, func(a *admin.Options) {
		a.TLS = func() admin.TLSStatus {
			return admin.TLSStatus{Source: "acme", Names: []string{"relay.test"}, Issuer: "outbound test CA",
				NotAfter: time.Now().Add(24 * time.Hour), LastError: "acme: http-01 challenge failed: connection refused"}
		}
	})
	o.API = rig.Client
	rs := Run(context.Background(), o)
	onlyFailure(t, rs, "certificate renewal", "check [acme]")
	if got := failures(rs, "renewal"); !strings.Contains(got[0].Detail, "http-01 challenge failed") {
		t.Errorf("detail does not carry the last error: %+v", got[0])
	}
}

func TestACMEWithoutCertificateYet(t *testing.T) {
	o, _ := healthy(t)
	rig := admintest.NewWith(t, func(a *admin.Options) {
		a.TLS = func() admin.TLSStatus { return admin.TLSStatus{Source: "acme", Names: []string{"relay.test"}} }
	})
	o.API = rig.Client
	onlyFailure(t, Run(context.Background(), o), "certificate renewal", "check [acme]")
}
