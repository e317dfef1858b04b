package main

import (
	"reflect"
	"testing"

	"outbound/config"
	"outbound/doctor"
)

func TestDoctorMinFreeSizes(t *testing.T) {
	for in, want := range map[string]uint64{"1GiB": 1 << 30, "500MiB": 500 << 20, "2GB": 2e9, "4096": 4096, "1.5GiB": 3 << 29} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1GiB", "GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestDoctorDialsWildcardListenersOnLoopback(t *testing.T) {
	for in, want := range map[string]string{":465": "127.0.0.1:465", "0.0.0.0:587": "127.0.0.1:587",
		"[::]:587": "[::1]:587", "192.0.2.1:465": "192.0.2.1:465", "": ""} {
		if got := dialableAddr(in); got != want {
			t.Errorf("dialableAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every configured HTTP listener besides the admin one is checked, HTTPS
// off loopback as the relay serves it, plain HTTP on loopback.
func TestDoctorChecksTheOtherHTTPListeners(t *testing.T) {
	var cfg config.Config
	if got := doctorHTTPListeners(cfg); len(got) != 0 {
		t.Errorf("none configured: %+v", got)
	}
	cfg.ProviderWebhooks.Listen = ":8443"
	cfg.Autoconfig.Listen = "127.0.0.1:8080"
	cfg.SendAPI.Listen = "192.0.2.1:8444"
	want := []doctor.HTTPListener{
		{Section: "provider_webhooks", Addr: "127.0.0.1:8443", TLS: true},
		{Section: "autoconfig", Addr: "127.0.0.1:8080"},
		{Section: "send_api", Addr: "192.0.2.1:8444", TLS: true},
	}
	if got := doctorHTTPListeners(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
