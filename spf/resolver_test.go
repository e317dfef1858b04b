package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/internal/dnstest"
)

// fakeClock drives the Resolver's cache expiry in tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// startResolver serves testdata/resolver.zone (plus extra zone text) and
// returns a Resolver on a fake clock.
func startResolver(t *testing.T, extra string) (*Resolver, *dnstest.Server, *fakeClock) {
	t.Helper()
	zone, err := os.ReadFile(filepath.Join("testdata", "resolver.zone"))
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.Start(t, string(zone)+"\n"+extra)
	r, err := NewResolver([]string{srv.Addr()}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.now = clock.now
	return r, srv, clock
}

func lookupTXT(t *testing.T, r *Resolver, name string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.LookupTXT(ctx, name)
}

func TestAnswersAreCachedForTTL(t *testing.T) {
	r, srv, clock := startResolver(t, "")
	for range 3 {
		if _, err := lookupTXT(t, r, "short.example.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Queries(); n != 1 {
		t.Fatalf("%d queries for three lookups within the TTL, want 1", n)
	}
	clock.advance(29 * time.Second)
	lookupTXT(t, r, "short.example.test")
	if n := srv.Queries(); n != 1 {
		t.Fatalf("%d queries at 29s of a 30s TTL, want 1", n)
	}
	clock.advance(time.Second)
	lookupTXT(t, r, "short.example.test")
	if n := srv.Queries(); n != 2 {
		t.Fatalf("%d queries once the TTL ran out, want 2", n)
	}
}

func TestNamesAreCachedCaseInsensitively(t *testing.T) {
	r, srv, _ := startResolver(t, "")
	lookupTXT(t, r, "short.example.test")
	lookupTXT(t, r, "SHORT.Example.Test.")
	if n := srv.Queries(); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
}

func TestCacheTTLIsCappedAtAnHour(t *testing.T) {
	r, srv, clock := startResolver(t, "")
	lookupTXT(t, r, "long.example.test") // TTL one day
	clock.advance(time.Hour - time.Second)
	lookupTXT(t, r, "long.example.test")
	if n := srv.Queries(); n != 1 {
		t.Fatalf("%d queries within the hour, want 1", n)
	}
	clock.advance(time.Second)
	lookupTXT(t, r, "long.example.test")
	if n := srv.Queries(); n != 2 {
		t.Fatalf("%d queries after an hour, want 2: the cap did not apply", n)
	}
}

func TestNegativeAnswersAreCachedBriefly(t *testing.T) {
	r, srv, clock := startResolver(t, "")
	for _, name := range []string{"nothere.example.test", "nodata.example.test"} {
		lookupTXT(t, r, name)
		lookupTXT(t, r, name)
	}
	if n := srv.Queries(); n != 2 {
		t.Fatalf("%d queries for two negative answers asked twice, want 2", n)
	}
	// The SOA says 30s (the smaller of its TTL and MINIMUM).
	clock.advance(30 * time.Second)
	lookupTXT(t, r, "nothere.example.test")
	if n := srv.Queries(); n != 3 {
		t.Fatalf("%d queries after the negative TTL, want 3", n)
	}
}

func TestServfailIsNeverCached(t *testing.T) {
	r, srv, _ := startResolver(t, "")
	srv.ServFail("short.example.test")
	for i := 1; i <= 3; i++ {
		if _, err := lookupTXT(t, r, "short.example.test"); err == nil {
			t.Fatal("SERVFAIL gave no error")
		}
		if n := srv.Queries(); n != i {
			t.Fatalf("%d queries after %d lookups, want %d", n, i, i)
		}
	}
}

func TestNXDOMAINAndNODATAAreNotFound(t *testing.T) {
	r, _, _ := startResolver(t, "")
	for _, name := range []string{"nothere.example.test", "nodata.example.test"} {
		_, err := lookupTXT(t, r, name)
		derr, ok := err.(*net.DNSError) // blitiri spf type-asserts, so no wrapping
		if !ok || !derr.IsNotFound || derr.Temporary() {
			t.Errorf("%s: err %#v, want a *net.DNSError with IsNotFound", name, err)
		}
	}
}

func TestServfailIsTemporaryError(t *testing.T) {
	r, srv, _ := startResolver(t, "")
	srv.ServFail("short.example.test")
	_, err := lookupTXT(t, r, "short.example.test")
	derr, ok := err.(*net.DNSError)
	if !ok || !derr.Temporary() || derr.IsNotFound || derr.IsTimeout {
		t.Fatalf("err %#v, want a temporary *net.DNSError", err)
	}
	if derr.Err != "TXT query answered SERVFAIL" || derr.Server != srv.Addr() {
		t.Errorf("err %q from %q, want the query type, rcode and server", derr.Err, derr.Server)
	}
}

func TestNoAnswerIsTimeoutError(t *testing.T) {
	r, srv, _ := startResolver(t, "")
	srv.Drop("short.example.test")
	start := time.Now()
	_, err := lookupTXT(t, r, "short.example.test")
	derr, ok := err.(*net.DNSError)
	if !ok || !derr.IsTimeout || !derr.Temporary() {
		t.Fatalf("err %#v, want a timeout *net.DNSError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v with a 300ms timeout", d)
	}
}

func TestContextCancellationStopsTheLookup(t *testing.T) {
	r, srv, _ := startResolver(t, "")
	srv.Drop("short.example.test")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.LookupTXT(ctx, "short.example.test")
	if derr, ok := err.(*net.DNSError); !ok || !derr.Temporary() {
		t.Fatalf("err %#v, want a temporary *net.DNSError", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("took %v, the context allowed 50ms", d)
	}
}

func TestTruncatedAnswerIsRetriedOverTCP(t *testing.T) {
	// A TXT record of 10 strings of 200 characters: larger than the 1232
	// bytes we accept over UDP.
	var parts []string
	var want strings.Builder
	for i := range 10 {
		s := fmt.Sprintf("%d%s", i, strings.Repeat("x", 199))
		parts = append(parts, `"`+s+`"`)
		want.WriteString(s)
	}
	r, srv, _ := startResolver(t, "big.example.test. 300 TXT "+strings.Join(parts, " "))
	txts, err := lookupTXT(t, r, "big.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(txts) != 1 || txts[0] != want.String() {
		t.Fatalf("got %d records (%d bytes), want the 2000-byte record whole", len(txts), len(strings.Join(txts, "")))
	}
	if n := srv.Queries(); n != 2 {
		t.Errorf("%d queries, want 2 (UDP truncated, then TCP)", n)
	}
}

func TestNextServerIsTriedAfterFailure(t *testing.T) {
	zone, err := os.ReadFile(filepath.Join("testdata", "resolver.zone"))
	if err != nil {
		t.Fatal(err)
	}
	broken := dnstest.Start(t, string(zone))
	broken.ServFail("short.example.test")
	good := dnstest.Start(t, string(zone))

	// A loopback UDP port with nobody listening.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()

	r, err := NewResolver([]string{closed, broken.Addr(), good.Addr()}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	txts, err := lookupTXT(t, r, "short.example.test")
	if err != nil || len(txts) != 1 {
		t.Fatalf("got %q, %v; want the good server's answer", txts, err)
	}
	if broken.Queries() != 1 || good.Queries() != 1 {
		t.Errorf("queries: broken %d, good %d; want 1 each", broken.Queries(), good.Queries())
	}
}

func TestLookupMXIPAddrAndAddr(t *testing.T) {
	r, _, _ := startResolver(t, "")
	ctx := context.Background()

	mxs, err := r.LookupMX(ctx, "example.test")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "mail.example.test." || mxs[0].Pref != 10 {
		t.Errorf("LookupMX = %v, %v", mxs, err)
	}

	addrs, err := r.LookupIPAddr(ctx, "alias.example.test") // a CNAME to mail
	var got []string
	for _, a := range addrs {
		got = append(got, a.IP.String())
	}
	if err != nil || !slices.Equal(got, []string{"192.0.2.25", "2001:db8::25"}) {
		t.Errorf("LookupIPAddr(alias) = %v, %v; want both addresses of mail", got, err)
	}

	addrs, err = r.LookupIPAddr(ctx, "nodata.example.test") // A only
	if err != nil || len(addrs) != 1 {
		t.Errorf("LookupIPAddr(nodata) = %v, %v; want its one IPv4 address", addrs, err)
	}

	_, err = r.LookupIPAddr(ctx, "nothere.example.test")
	var derr *net.DNSError
	if !errors.As(err, &derr) || !derr.IsNotFound {
		t.Errorf("LookupIPAddr(nothere) err %v, want not found", err)
	}

	names, err := r.LookupAddr(ctx, "192.0.2.25")
	if err != nil || !slices.Equal(names, []string{"mail.example.test."}) {
		t.Errorf("LookupAddr = %v, %v", names, err)
	}
}

func TestConcurrentLookupsAreSafe(t *testing.T) {
	r, _, _ := startResolver(t, "")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := lookupTXT(t, r, "example.test"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestNewResolverReadsResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# test\nnameserver 127.0.0.1\nnameserver ::1\nsearch example.test\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := newResolverFromFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !slices.Equal(got, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Errorf("servers %q", got)
	}
	if r.timeout != DefaultTimeout {
		t.Errorf("timeout %v, want the default %v", r.timeout, DefaultTimeout)
	}
}

func TestNewResolverFailsWithoutNameservers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("search example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newResolverFromFile(path, 0); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("err %v, want one naming %s", err, path)
	}
}

func TestServerAddressesAreValidated(t *testing.T) {
	r, err := NewResolver([]string{"192.0.2.53", "[2001:db8::53]:5353", "localhost:53"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !slices.Equal(got, []string{"192.0.2.53:53", "[2001:db8::53]:5353", "localhost:53"}) {
		t.Errorf("servers %q", got)
	}
	if _, err := NewResolver([]string{"dns.example"}, time.Second); err == nil || !strings.Contains(err.Error(), `"dns.example"`) {
		t.Errorf("err %v, want one naming the bad server", err)
	}
}
