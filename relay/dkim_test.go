package relay

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"outbound/dkim"
	"outbound/internal/dnstest"
	"outbound/internal/testutil"
	"outbound/route"
	"outbound/smarthost"
	"outbound/store"
)

// dkimRig is a relay whose Signer is a real dkim.Store with keys for
// example.com, and a DNS server publishing the records the store lists.
type dkimRig struct {
	*harness
	keys *dkim.Store
	dns  *dnstest.Server
}

func startSigningRelay(t *testing.T, tweak func(*Options)) *dkimRig {
	t.Helper()
	db := testutil.OpenDB(t)
	t.Setenv(smarthost.KeyEnv, "")
	hosts, err := smarthost.Open(store.Bolt(db), filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := dkim.Open(store.Bolt(db), hosts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Generate("example.com", "s1", "both"); err != nil {
		t.Fatal(err)
	}
	records, err := keys.Records("example.com")
	if err != nil {
		t.Fatal(err)
	}
	var zone strings.Builder
	for _, r := range records {
		var parts []string
		for v := r.Value; v != ""; v = v[min(len(v), 255):] {
			parts = append(parts, `"`+v[:min(len(v), 255)]+`"`)
		}
		fmt.Fprintf(&zone, "%s. IN TXT %s\n", r.Name, strings.Join(parts, " "))
	}
	h := startRelay(t, func(o *Options) {
		o.Signer = keys
		if tweak != nil {
			tweak(o)
		}
	})
	return &dkimRig{harness: h, keys: keys, dns: dnstest.Start(t, zone.String())}
}

// verify checks every signature of a queued message with go-msgauth
// against the test DNS server and returns them.
func (r *dkimRig) verify(t *testing.T, queued []byte) []*msgdkim.Verification {
	t.Helper()
	lookup := func(name string) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		in, err := dns.Exchange(m, r.dns.Addr())
		if err != nil {
			return nil, err
		}
		var out []string
		for _, rr := range in.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		return out, nil
	}
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(queued), &msgdkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature d=%s does not verify: %v\n%s", v.Domain, v.Err, queued)
		}
	}
	return vs
}

func (r *dkimRig) submit(t *testing.T, msg string) []byte {
	t.Helper()
	c := r.login(t, true)
	if err := send(c, alice, []string{"bob@example.net"}, msg); err != nil {
		t.Fatal(err)
	}
	r.spool.mu.Lock()
	defer r.spool.mu.Unlock()
	return r.spool.bodies[len(r.spool.bodies)-1]
}

func signedFields(v *msgdkim.Verification) string {
	return strings.ToLower(strings.Join(v.HeaderKeys, ":"))
}

// A message is signed for its header From's domain with both keys, after
// the relay's own changes (Message-ID and Date added, the display name and
// Reply-To filled in), which the signature covers.
func TestQueuedMessageIsDKIMSignedForTheFromDomain(t *testing.T) {
	r := startSigningRelay(t, nil)
	r.setSenderSettings(t)
	queued := r.submit(t, "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello Bob.\r\n")
	if !bytes.HasPrefix(queued, []byte("DKIM-Signature:")) {
		t.Fatalf("queued message does not start with its signature:\n%s", queued)
	}
	vs := r.verify(t, queued)
	if len(vs) != 2 {
		t.Fatalf("%d signatures, want Ed25519 and RSA", len(vs))
	}
	for _, v := range vs {
		f := signedFields(v)
		if v.Domain != "example.com" || !strings.HasPrefix(f, "from:from:") {
			t.Errorf("d=%s h=%s", v.Domain, f)
		}
		for _, want := range []string{"reply-to", "date", "message-id", "subject", "to"} {
			if !strings.Contains(":"+f+":", ":"+want+":") {
				t.Errorf("%s not signed: h=%s", want, f)
			}
		}
	}
	if !bytes.Contains(queued, []byte(`From: "Alice Example" <alice@example.com>`)) || !bytes.Contains(queued, []byte("Reply-To: help@example.com")) {
		t.Errorf("sender defaults not applied:\n%s", queued)
	}
}

// A line over 998 octets is re-encoded before signing, so the message
// as queued (and sent) verifies.
func TestLongLineMessageVerifiesAsQueued(t *testing.T) {
	r := startSigningRelay(t, func(o *Options) { o.MaxLineLength = 64 << 10 })
	queued := r.submit(t, "From: alice@example.com\r\nSubject: newsletter\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello,\r\n"+longHTML+"\r\nBye.\r\n")
	if n := longestLine(queued); n > 998 {
		t.Fatalf("a line of %d octets was queued", n)
	}
	if vs := r.verify(t, queued); len(vs) != 2 {
		t.Fatalf("%d signatures", len(vs))
	}
}

// On a route through Amazon SES, which replaces Message-ID and Date,
// the signature leaves them out.
func TestSESRouteDoesNotSignDateOrMessageID(t *testing.T) {
	routes, err := route.New(route.Options{Default: route.Default{Host: "email-smtp.eu-west-1.amazonaws.com", Port: 587, TLSMode: "starttls"}})
	if err != nil {
		t.Fatal(err)
	}
	r := startSigningRelay(t, func(o *Options) { o.Routes = routes })
	queued := r.submit(t, "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\nDate: Sun, 01 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello.\r\n")
	vs := r.verify(t, queued)
	if len(vs) != 2 {
		t.Fatalf("%d signatures", len(vs))
	}
	for _, v := range vs {
		if f := ":" + signedFields(v) + ":"; strings.Contains(f, ":date:") || strings.Contains(f, ":message-id:") {
			t.Errorf("SES route signs h=%s", f)
		}
	}
	// What SES does on its way out: the signatures still verify.
	rewritten := bytes.Replace(queued, []byte("<1@example.com>"), []byte("<0102018e@eu-west-1.amazonses.com>"), 1)
	r.verify(t, bytes.Replace(rewritten, []byte("10:00:00"), []byte("10:00:03"), 1))
}

// A message the client signed for the From domain is queued as it came
// (behind the relay's trace headers), with no second signature; one
// signed for another domain gets the From domain's signature too.
func TestMessageAlreadySignedForTheDomainIsLeftAlone(t *testing.T) {
	r := startSigningRelay(t, nil)
	r.setSenderSettings(t)
	const rest = "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\nDate: Sun, 01 Mar 2026 10:00:00 +0000\r\nMessage-ID: <2@example.com>\r\n\r\nSigned by the client.\r\n"
	own := "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=Example.COM; s=client;\r\n h=from:to:subject; bh=AAAA; b=BBBB\r\n" + rest
	queued := r.submit(t, own)
	if !bytes.HasSuffix(queued, []byte(own)) || bytes.Count(queued, []byte("DKIM-Signature:")) != 1 {
		t.Fatalf("the client's signed message was changed:\n%s", queued)
	}
	other := strings.Replace(own, "d=Example.COM", "d=esp.example", 1)
	queued = r.submit(t, other)
	if !bytes.HasSuffix(queued, []byte(other)) || bytes.Count(queued, []byte("DKIM-Signature:")) != 3 {
		t.Fatalf("signed for another domain, want ours added:\n%s", queued)
	}
	if !bytes.Contains(queued, []byte("d=example.com;")) {
		t.Fatalf("no signature for example.com:\n%s", queued)
	}
}

// A From domain without a key is queued unsigned.
func TestFromDomainWithoutKeyIsNotSigned(t *testing.T) {
	r := startSigningRelay(t, nil)
	queued := r.submit(t, "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n")
	if bytes.Contains(queued, []byte("DKIM-Signature")) {
		t.Fatalf("signed without a key:\n%s", queued)
	}
}

func TestSignedFor(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"v=1; d=example.com; s=x", true},
		{"v=1;d=EXAMPLE.com.;s=x", true},
		{"v=1; d=exa\r\n mple.com; s=x", true},
		{"v=1; d=sub.example.com; s=x", false},
		{"v=1; s=x; i=@example.com", false},
	} {
		if got := signedFor([]string{tc.v}, "example.com"); got != tc.want {
			t.Errorf("%q: %v", tc.v, got)
		}
	}
}
