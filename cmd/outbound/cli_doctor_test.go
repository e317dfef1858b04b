package main

import "testing"

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
