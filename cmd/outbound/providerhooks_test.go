package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// startWithProviderHooks runs the relay with provider_webhooks.listen on
// host (port picked) and returns the listener's address.
func startWithProviderHooks(t *testing.T, host string) string {
	t.Helper()
	srv := startFromTOML(t, "[submission]\nimplicit_tls = \"127.0.0.1:0\"\nstarttls = \"\"\n[admin]\nlisten = \"\"\n"+
		"[provider_webhooks]\nlisten = "+strconv.Quote(net.JoinHostPort(host, "0"))+"\n")
	_, port, _ := net.SplitHostPort(srv.addrs["provider_webhooks"])
	return net.JoinHostPort("127.0.0.1", port)
}

// Off loopback the providers' webhook listener speaks only HTTPS (with the
// relay's certificate); on loopback plain HTTP. Either way an unsigned
// event is refused.
func TestProviderWebhookListenerHTTPSOffLoopback(t *testing.T) {
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	body := `{"signature":{"timestamp":"1","token":"t","signature":"00"},"event-data":{"event":"failed"}}`

	addr := startWithProviderHooks(t, "0.0.0.0")
	if resp, err := http.Post("http://"+addr+"/hooks/mg/mailgun", "application/json", strings.NewReader(body)); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest { // Go's answer to HTTP on an HTTPS port
			t.Fatalf("plain HTTP off loopback answered %d", resp.StatusCode)
		}
	}
	resp, err := insecure.Post("https://"+addr+"/hooks/mg/mailgun", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("HTTPS unsigned: %d, want 401", resp.StatusCode)
	}

	addr = startWithProviderHooks(t, "127.0.0.1")
	resp, err = http.Post("http://"+addr+"/hooks/mg/mailgun", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("loopback HTTP unsigned: %d, want 401", resp.StatusCode)
	}
}
