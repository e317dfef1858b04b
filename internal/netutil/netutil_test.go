package netutil

import (
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true,
		"": false, "example.com": false, "localhost.example.com": false, "10.0.0.1": false, "::": false, "0.0.0.0": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestValidateTLSMode(t *testing.T) {
	for _, tc := range []struct{ mode, host, want string }{
		{"implicit", "smtp.example.com", ""},
		{"starttls", "smtp.example.com", ""},
		{"none", "127.0.0.1", ""},
		{"none", "localhost", ""},
		{"none", "smtp.example.com", `tls "none" is allowed only for a loopback host, not "smtp.example.com"`},
		{"", "smtp.example.com", `tls must be "implicit", "starttls" or "none", got ""`},
		{"ssl", "smtp.example.com", `tls must be "implicit", "starttls" or "none", got "ssl"`},
	} {
		err := ValidateTLSMode(tc.mode, tc.host)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("ValidateTLSMode(%q, %q) = %v, want %q", tc.mode, tc.host, err, tc.want)
		}
	}
}
