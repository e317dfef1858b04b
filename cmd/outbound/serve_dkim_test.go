package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	outdkim "outbound/dkim"
	"outbound/internal/dnstest"
	"outbound/internal/testutil"
	"outbound/queue"
)

// The served relay signs with the keys dkim keygen made, and still does
// after the master key was rotated and the relay restarted: the rotation
// re-sealed them.
func TestServeSignsWithKeysMadeByTheCLIAcrossKeyRotation(t *testing.T) {
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(testutil.FreePort(t))
	config := testutil.WriteFile(t, dir, "outbound.toml", []byte("data_dir = "+strconv.Quote(filepath.Join(dir, "data"))+"\n"+
		"[submission]\nimplicit_tls = \"127.0.0.1:0\"\nstarttls = \"\"\n"+
		"[admin]\nlisten = "+strconv.Quote(net.JoinHostPort("127.0.0.1", port))+"\n"))
	cfg, err := loadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, config, "a long enough password\n", "user", "add", "alice@example.org"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	if out, err := runCLI(t, config, "", "dkim", "keygen", "example.org", "--selector", "s1"); err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	out, err := runCLI(t, config, "", "dkim", "records", "example.org", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var records []outdkim.Record
	if err := json.Unmarshal([]byte(out), &records); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var zone strings.Builder
	for _, r := range records {
		fmt.Fprintf(&zone, "%s. IN TXT %s\n", r.Name, outdkim.Quoted(r.Value))
	}
	ns := dnstest.Start(t, zone.String())

	submitAndVerify := func(srv *server, subject string) {
		t.Helper()
		submitAsAlice(t, srv, subject)
		msgs, err := srv.queue.List(func(m *queue.Message) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		for _, m := range msgs {
			if b, err := srv.queue.Body(m.ID); err == nil && bytes.Contains(b, []byte("Subject: "+subject)) {
				body = b
			}
		}
		lookup := func(name string) ([]string, error) {
			q := new(dns.Msg)
			q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
			in, err := dns.Exchange(q, ns.Addr())
			if err != nil {
				return nil, err
			}
			var out []string
			for _, rr := range in.Answer {
				out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
			}
			return out, nil
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(body), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 2 {
			t.Fatalf("%s: %d signatures, %v\n%s", subject, len(vs), err, body)
		}
		for _, v := range vs {
			if v.Err != nil || v.Domain != "example.org" {
				t.Errorf("%s: d=%s: %v", subject, v.Domain, v.Err)
			}
		}
	}
	submitAndVerify(srv, "first")
	if out, err := runCLI(t, config, "", "key", "rotate"); err != nil {
		t.Fatalf("key rotate: %v\n%s", err, out)
	}
	srv.stop()
	if srv, err = start(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	submitAndVerify(srv, "after the key rotation")
}
