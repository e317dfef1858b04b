package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/dkim"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/smarthost"
	"outbound/store"
)

// newDKIMCLIRig is a cliRig whose API has a DKIM store.
func newDKIMCLIRig(t *testing.T) *cliRig {
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
	api := admintest.NewWith(t, func(o *admin.Options) { o.DKIM = keys })
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, dataDir, "admin.token", []byte(admintest.Token+"\n"))
	config := testutil.WriteFile(t, dir, "outbound.toml", []byte("data_dir = "+strconv.Quote(dataDir)+
		"\n[admin]\nlisten = "+strconv.Quote(strings.TrimPrefix(api.URL, "http://"))+"\n"))
	return &cliRig{Rig: api, t: t, config: config}
}

// keygen prints the new keys and zone-file records (the RSA key split
// into 255-octet strings); list shows them; rotate prints the date until
// which the old selectors stay published.
func TestCLIDKIMKeygenListRotateRecords(t *testing.T) {
	r := newDKIMCLIRig(t)
	out := r.mustRun("dkim", "keygen", "example.org", "--selector", "s1")
	for _, want := range []string{
		"new ed25519 key for example.org, selector s1-ed25519",
		"new rsa key for example.org, selector s1-rsa",
		`s1-ed25519._domainkey.example.org. IN TXT "v=DKIM1; k=ed25519; p=`,
		`_dmarc.example.org. IN TXT "v=DMARC1; p=none`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("keygen output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`s1-rsa\._domainkey\.example\.org\. IN TXT "v=DKIM1; k=rsa; p=[^"]+" "[^"]+"`).MatchString(out) {
		t.Errorf("the RSA record is not split into strings:\n%s", out)
	}
	if list := r.mustRun("dkim", "list"); !strings.Contains(list, "s1-rsa") || strings.Count(list, "signing") != 2 {
		t.Errorf("list:\n%s", list)
	}
	out = r.mustRun("dkim", "rotate", "example.org", "--selector", "s2")
	if !regexp.MustCompile(`retired ed25519 key s1-ed25519: it signs nothing more; keep its record published until \d{4}-\d\d-\d\d`).MatchString(out) ||
		!strings.Contains(out, "new rsa key for example.org, selector s2-rsa") {
		t.Errorf("rotate:\n%s", out)
	}
	var keys []admin.DKIMKey
	if out := r.mustRun("dkim", "list", "example.org", "--json"); json.Unmarshal([]byte(out), &keys) != nil || len(keys) != 4 {
		t.Errorf("list --json:\n%s", out)
	}
	if out := r.mustRun("dkim", "records", "example.org"); strings.Count(out, "._domainkey.example.org. IN TXT") != 4 {
		t.Errorf("records:\n%s", out)
	}
	if _, _, err := r.run("", "dkim", "records", "example.com"); err == nil || !strings.Contains(err.Error(), "dkim keygen example.com") {
		t.Errorf("records of a domain without keys: %v", err)
	}
	if _, _, err := r.run("", "dkim", "keygen"); err == nil || !strings.HasPrefix(err.Error(), "usage: outbound dkim keygen DOMAIN") {
		t.Errorf("keygen without a domain: %v", err)
	}
}
