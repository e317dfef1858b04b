package main

import (
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"outbound/auth"
	"outbound/autoconfig"
)

// startWithAutoconfig runs the relay with autoconfig.listen on host (port
// picked) and a user sending from example.com; it returns the listener's
// address on loopback.
func startWithAutoconfig(t *testing.T, host string) string {
	t.Helper()
	srv := startFromTOML(t, "hostname = \"relay.example.net\"\n"+
		"[submission]\nimplicit_tls = \"127.0.0.1:0\"\nstarttls = \"\"\n[admin]\nlisten = \"\"\n"+
		"[autoconfig]\nlisten = "+strconv.Quote(net.JoinHostPort(host, "0"))+"\n")
	srv.users.SetHashCost(4)
	if _, err := srv.users.Add("alice@example.com", "a password 1", nil); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.addrs["autoconfig"])
	return net.JoinHostPort("127.0.0.1", port)
}

// Off loopback autoconfig's own listener speaks only HTTPS, with the
// relay's certificate; on loopback plain HTTP. Either way it answers for
// the users' domains only.
func TestAutoconfigListenerHTTPSOffLoopback(t *testing.T) {
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	const path = "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.com"

	addr := startWithAutoconfig(t, "0.0.0.0")
	if resp, err := http.Get("http://" + addr + path); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest { // Go's answer to HTTP on an HTTPS port
			t.Fatalf("plain HTTP off loopback answered %d", resp.StatusCode)
		}
	}
	resp, err := insecure.Get("https://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cc autoconfig.ClientConfig
	if resp.StatusCode != http.StatusOK || xml.Unmarshal(body, &cc) != nil || cc.Provider.Outgoing[0].Hostname != "relay.example.net" {
		t.Fatalf("HTTPS: %d %s", resp.StatusCode, body)
	}
	resp, err = insecure.Get("https://" + addr + "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=eve%40elsewhere.example")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown domain: %d, want 404", resp.StatusCode)
	}

	addr = startWithAutoconfig(t, "127.0.0.1")
	resp, err = http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loopback HTTP: %d", resp.StatusCode)
	}
}

// The admin listener serves autoconfig's paths beside the API and the
// web interface.
func TestAdminListenerServesAutoconfig(t *testing.T) {
	h := withAutoconfig(autoconfig.Handler(autoconfig.Options{Hostname: "relay.example.net", Users: staticUsers{}}),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for path, want := range map[string]int{
		"/mail/config-v1.1.xml?emailaddress=x%40unknown.example": http.StatusNotFound,
		"/api/users": http.StatusTeapot,
		"/":          http.StatusTeapot,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
	}
}

// staticUsers is a relay without users.
type staticUsers struct{}

func (staticUsers) List() ([]*auth.User, error) { return nil, nil }

// Clients are told the submission listeners' configured ports; a
// listener on port 0 (tests) or turned off leaves the standard one.
func TestAutoconfigPortsFollowTheListeners(t *testing.T) {
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Submission.ImplicitTLS, cfg.Submission.StartTLS = ":2465", ""
	o := autoconfigOptions(cfg, staticUsers{}, "token", nil)
	if o.ImplicitTLSPort != 2465 || o.STARTTLSPort != 0 || o.Hostname != cfg.Hostname {
		t.Fatalf("options %+v", o)
	}
}
