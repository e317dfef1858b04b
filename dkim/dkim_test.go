package dkim_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
	bolt "go.etcd.io/bbolt"

	"outbound/dkim"
	"outbound/internal/dnstest"
	"outbound/smarthost"
	"outbound/store"
)

type rig struct {
	keys   *dkim.Store
	hosts  *smarthost.Store
	dbPath string
	now    time.Time
}

func newRig(t *testing.T) *rig {
	t.Helper()
	t.Setenv(smarthost.KeyEnv, "")
	dir := t.TempDir()
	r := &rig{dbPath: filepath.Join(dir, "outbound.db"), now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	db, err := bolt.Open(r.dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if r.hosts, err = smarthost.Open(store.Bolt(db), filepath.Join(dir, "secrets.key")); err != nil {
		t.Fatal(err)
	}
	if r.keys, err = dkim.Open(store.Bolt(db), r.hosts, func() time.Time { return r.now }); err != nil {
		t.Fatal(err)
	}
	r.hosts.AlsoReseal(r.keys.Reseal)
	return r
}

// zone publishes records as a DNS server would serve them, splitting
// long TXT values into 255-octet strings as DNS requires.
func zone(records []dkim.Record) string {
	var z strings.Builder
	for _, r := range records {
		var parts []string
		for v := r.Value; v != ""; {
			n := min(len(v), 255)
			parts = append(parts, `"`+v[:n]+`"`)
			v = v[n:]
		}
		fmt.Fprintf(&z, "%s. 300 IN TXT %s\n", r.Name, strings.Join(parts, " "))
	}
	return z.String()
}

// lookupTXT asks the test DNS server, joining each record's strings as
// resolvers do.
func lookupTXT(t *testing.T, srv *dnstest.Server) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		in, err := dns.Exchange(m, srv.Addr())
		if err != nil {
			return nil, err
		}
		var out []string
		for _, rr := range in.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no TXT record at %s", name)
		}
		return out, nil
	}
}

const message = "From: Ann <ann@example.org>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: quarterly report\r\n" +
	"Date: Sun, 01 Mar 2026 10:00:00 +0000\r\n" +
	"Message-ID: <1@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello Bob,\r\n\r\nthe numbers are attached.   \r\n"

// verify checks msg with go-msgauth against the published records and
// returns the verifications (each must pass).
func verify(t *testing.T, records []dkim.Record, msg []byte) []*msgdkim.Verification {
	t.Helper()
	srv := dnstest.Start(t, zone(records))
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{LookupTXT: lookupTXT(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature d=%s failed: %v", v.Domain, v.Err)
		}
	}
	return vs
}

func TestKeygenSignsWithBothKeysVerifiedAgainstPublishedRecords(t *testing.T) {
	r := newRig(t)
	keys, err := r.keys.Generate("Example.org", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Selector != "ob20260301-ed25519" || keys[1].Selector != "ob20260301-rsa" {
		t.Fatalf("keys: %+v", keys)
	}
	records, err := r.keys.Records("example.org")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := r.keys.Sign("example.org", []byte(message), nil)
	if err != nil {
		t.Fatal(err)
	}
	signed := append(sig, message...)
	vs := verify(t, records, signed)
	if len(vs) != 2 {
		t.Fatalf("%d signatures, want Ed25519 and RSA", len(vs))
	}
	for _, v := range vs {
		if v.Domain != "example.org" {
			t.Errorf("d=%s", v.Domain)
		}
		for _, h := range []string{"date", "message-id"} {
			if !containsFold(v.HeaderKeys, h) {
				t.Errorf("%s not signed: %v", h, v.HeaderKeys)
			}
		}
		if n := countFold(v.HeaderKeys, "from"); n != 2 {
			t.Errorf("From signed %d times, want 2 (oversigned): %v", n, v.HeaderKeys)
		}
	}
	if !strings.Contains(string(sig), "c=relaxed/relaxed") || !strings.Contains(string(sig), "a=ed25519-sha256") || !strings.Contains(string(sig), "a=rsa-sha256") {
		t.Errorf("signatures: %s", sig)
	}
	last := records[len(records)-1]
	if last.Name != "_dmarc.example.org" || !strings.HasPrefix(last.Value, "v=DMARC1; p=none") {
		t.Errorf("DMARC suggestion: %+v", last)
	}
	// A changed body or a second From no longer verifies.
	tampered := bytes.Replace(signed, []byte("attached"), []byte("wrong"), 1)
	srv := dnstest.Start(t, zone(records))
	vs, _ = msgdkim.VerifyWithOptions(bytes.NewReader(tampered), &msgdkim.VerifyOptions{LookupTXT: lookupTXT(t, srv)})
	for _, v := range vs {
		if v.Err == nil {
			t.Error("a changed body verified")
		}
	}
}

func TestRewrittenHeadersAreNotSigned(t *testing.T) {
	r := newRig(t)
	if _, err := r.keys.Generate("example.org", "s1", dkim.Ed25519); err != nil {
		t.Fatal(err)
	}
	records, _ := r.keys.Records("example.org")
	sig, err := r.keys.Sign("example.org", []byte(message), []string{"Message-ID", "Date"})
	if err != nil {
		t.Fatal(err)
	}
	signed := append(sig, message...)
	vs := verify(t, records, signed)
	if len(vs) != 1 || containsFold(vs[0].HeaderKeys, "date") || containsFold(vs[0].HeaderKeys, "message-id") {
		t.Fatalf("signed fields: %v", vs[0].HeaderKeys)
	}
	// What SES does: a new Message-ID and Date; the signature survives.
	rewritten := strings.Replace(string(signed), "<1@example.org>", "<0100018e@email.amazonses.com>", 1)
	rewritten = strings.Replace(rewritten, "Sun, 01 Mar 2026 10:00:00", "Sun, 01 Mar 2026 10:00:07", 1)
	verify(t, records, []byte(rewritten))
}

func TestDomainWithoutKeyIsNotSigned(t *testing.T) {
	r := newRig(t)
	sig, err := r.keys.Sign("example.org", []byte(message), nil)
	if err != nil || sig != nil {
		t.Fatalf("sig %q, err %v", sig, err)
	}
	if _, err := r.keys.Records("example.org"); err == nil {
		t.Fatal("records for a domain without keys")
	}
}

func TestPrivateKeysAreSealedInTheDatabase(t *testing.T) {
	r := newRig(t)
	keys, err := r.keys.Generate("example.org", "s1", "both")
	if err != nil {
		t.Fatal(err)
	}
	// Open the key the same way the store does, to know what the clear
	// text would look like on disk.
	sig, err := r.keys.Sign("example.org", []byte(message), nil)
	if err != nil || len(sig) == 0 {
		t.Fatal(err)
	}
	file, err := os.ReadFile(r.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		der, err := r.hosts.Open([]byte("dkim/example.org/"+k.Selector), k.SealedPrivate)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(file, der) || bytes.Contains(file, []byte(base64.StdEncoding.EncodeToString(der))) || bytes.Contains(file, der[16:48]) {
			t.Errorf("the %s private key is in the database file in the clear", k.Algorithm)
		}
	}
	if bytes.Contains(file, []byte("PRIVATE KEY")) {
		t.Error("a PEM private key is in the database file")
	}
	// Sealed for its own selector only: moved onto another, it does not open.
	if _, err := r.hosts.Open([]byte("dkim/example.org/other"), keys[0].SealedPrivate); err == nil {
		t.Error("a sealed key opened under another selector's additional data")
	}
}

func TestMasterKeyRotationResealsDKIMKeys(t *testing.T) {
	r := newRig(t)
	if _, err := r.keys.Generate("example.org", "s1", dkim.Ed25519); err != nil {
		t.Fatal(err)
	}
	before, _ := r.keys.List("example.org")
	if err := r.hosts.RotateKey(smarthost.NewKey()); err != nil {
		t.Fatal(err)
	}
	after, _ := r.keys.List("example.org")
	if bytes.Equal(before[0].SealedPrivate, after[0].SealedPrivate) {
		t.Fatal("the DKIM key was not re-sealed under the new master key")
	}
	if _, err := r.hosts.Open([]byte("dkim/example.org/s1"), after[0].SealedPrivate); err != nil {
		t.Fatalf("the re-sealed key does not open under the new master key: %v", err)
	}
}

func TestRotateRetiresOldKeysAtOnceAndKeepsThemPublished(t *testing.T) {
	r := newRig(t)
	if _, err := r.keys.Generate("example.org", "old", "both"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.keys.Generate("example.org", "old", "both"); err == nil {
		t.Fatal("a selector in use was generated again")
	}
	r.now = r.now.Add(24 * time.Hour)
	added, retired, err := r.keys.Rotate("example.org", "new", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 2 || len(retired) != 2 {
		t.Fatalf("added %d, retired %d", len(added), len(retired))
	}
	until := r.now.Add(dkim.RetiredPublishFor)
	for _, k := range retired {
		if !strings.HasPrefix(k.Selector, "old-") || !k.PublishUntil.Equal(until) {
			t.Errorf("retired %s until %v, want %v", k.Selector, k.PublishUntil, until)
		}
	}
	sig, err := r.keys.Sign("example.org", []byte(message), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sig), "s=old-") || strings.Count(string(sig), "s=new-") != 2 {
		t.Fatalf("signed with: %s", sig)
	}
	records, _ := r.keys.Records("example.org")
	if len(records) != 5 || !strings.Contains(records[0].Note, "until "+until.Format(time.DateOnly)) {
		t.Fatalf("records while the old keys are published: %+v", records)
	}
	verify(t, records, append(sig, message...))
	r.now = until.Add(time.Second)
	records, _ = r.keys.Records("example.org")
	if len(records) != 3 {
		t.Fatalf("records after the date: %+v", records)
	}
}

// TestDkimpyVerifiesOurSignatures has Debian's python3-dkim, an
// independent implementation, verify both signatures, looking the keys up
// with dnspython on a test DNS server that serves the records the store
// prints (long values split into 255-octet strings, as DNS requires).
func TestDkimpyVerifiesOurSignatures(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-I", "-c", "import dkim, dns.resolver").Run(); err != nil {
		t.Fatalf("dkimpy or dnspython is missing (Debian packages python3-dkim, python3-dnspython; scripts/install-test-deps.sh installs them): %v", err)
	}
	r := newRig(t)
	if _, err := r.keys.Generate("example.org", "py", "both"); err != nil {
		t.Fatal(err)
	}
	records, _ := r.keys.Records("example.org")
	srv := dnstest.Start(t, zone(records))
	host, port, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := r.keys.Sign("example.org", []byte(message), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	msgPath := filepath.Join(dir, "msg.eml")
	if err := os.WriteFile(msgPath, append(sig, message...), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, dkim, dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers, resolver.port = [sys.argv[2]], int(sys.argv[3])
def dnsfunc(name, timeout=5):
    answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
    return b"".join(b"".join(rr.strings) for rr in answer)
msg = open(sys.argv[1], "rb").read()
d = dkim.DKIM(msg)
n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
ok = all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n))
print(n, ok)
sys.exit(0 if ok and n == 2 else 1)
`
	cmd := exec.Command(python, "-I", "-c", script, msgPath, host, port)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy did not verify: %v\n%s", err, out)
	}
	if srv.Queries() < 2 {
		t.Fatalf("dkimpy asked the test DNS server %d times, want one lookup per signature", srv.Queries())
	}
}

func containsFold(list []string, s string) bool { return countFold(list, s) > 0 }

func countFold(list []string, s string) int {
	n := 0
	for _, v := range list {
		if strings.EqualFold(v, s) {
			n++
		}
	}
	return n
}

func TestQuotedSplitsLongValuesInto255OctetStrings(t *testing.T) {
	long := strings.Repeat("a", 300)
	if got := dkim.Quoted(long); got != `"`+long[:255]+`" "`+long[255:]+`"` {
		t.Errorf("got %s", got)
	}
	if got := dkim.Quoted("v=DMARC1; p=none"); got != `"v=DMARC1; p=none"` {
		t.Errorf("got %s", got)
	}
}
