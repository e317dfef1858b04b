package admin_test

import (
	"path/filepath"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/dkim"
	"outbound/internal/admintest"
	"outbound/internal/testutil"
	"outbound/smarthost"
	"outbound/store"
)

func dkimRig(t *testing.T) *admintest.Rig {
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
	return admintest.NewWith(t, func(o *admin.Options) { o.DKIM = keys })
}

func TestDKIMKeygenListRotateAndRecords(t *testing.T) {
	r := dkimRig(t)
	res, err := r.Client.GenerateDKIM("example.org", admin.DKIMKeyRequest{Selector: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 2 || res.Added[0].Selector != "s1-ed25519" || res.Added[1].Selector != "s1-rsa" || !res.Added[0].Active {
		t.Fatalf("added: %+v", res.Added)
	}
	if len(res.Records) != 3 || res.Records[0].Name != "s1-ed25519._domainkey.example.org" || !strings.HasPrefix(res.Records[0].Value, "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("records: %+v", res.Records)
	}
	if _, err := r.Client.GenerateDKIM("example.org", admin.DKIMKeyRequest{Selector: "s1"}); statusOf(err) != 409 {
		t.Errorf("a selector in use: %v, want 409", err)
	}
	if _, err := r.Client.GenerateDKIM("example.org", admin.DKIMKeyRequest{Algorithm: "dsa"}); statusOf(err) != 400 {
		t.Errorf("an unknown algorithm: %v, want 400", err)
	}
	rot, err := r.Client.RotateDKIM("example.org", admin.DKIMKeyRequest{Selector: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Added) != 2 || len(rot.Retired) != 2 || rot.Retired[0].Active || rot.Retired[0].PublishUntil.IsZero() {
		t.Fatalf("rotate: %+v", rot)
	}
	keys, err := r.Client.DKIMKeys("")
	if err != nil || len(keys) != 4 {
		t.Fatalf("list: %+v %v", keys, err)
	}
	recs, err := r.Client.DKIMRecords("example.org")
	if err != nil || len(recs) != 5 {
		t.Fatalf("records: %+v %v", recs, err)
	}
	if _, err := r.Client.DKIMRecords("example.com"); statusOf(err) != 404 {
		t.Errorf("records of a domain without keys: %v, want 404", err)
	}
	if _, err := r.Client.RotateDKIM("example.com", admin.DKIMKeyRequest{}); statusOf(err) != 404 {
		t.Errorf("rotating a domain without keys: %v, want 404", err)
	}
	if code, _ := r.Call(t, "GET", "/api/dkim", "", nil); code != 401 {
		t.Errorf("without the token: %d", code)
	}
	if _, err := r.Client.ActingFor("ann").DKIMKeys(""); statusOf(err) != 403 {
		t.Errorf("a sender listing DKIM keys: %v, want 403", err)
	}
}

func TestDKIMWithoutAStoreIs501(t *testing.T) {
	r := admintest.New(t)
	if _, err := r.Client.DKIMKeys(""); statusOf(err) != 501 {
		t.Errorf("got %v, want 501", err)
	}
}
