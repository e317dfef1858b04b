package route

import (
	"testing"

	"outbound/auth"
	"outbound/spf"
)

// The capture route picks the capture upstream for the default route,
// without dialling anything, with SPF off (nothing leaves) and no header
// rewrites, even when the host of the embedded defaults is a provider's.
func TestDefaultRouteCapture(t *testing.T) {
	r, err := New(Options{Default: Default{Capture: true, Host: "smtp.eu.mailgun.org", SPFPolicy: spf.PolicyEnforce}, MaxPerDay: 10})
	if err != nil {
		t.Fatal(err)
	}
	up, err := r.Upstream("")
	if err != nil {
		t.Fatal(err)
	}
	if !up.Capture || up.Name != DefaultName || up.Host != CaptureHost {
		t.Fatalf("upstream = %+v, want the capture upstream", up)
	}
	p := r.Policy(&auth.User{})
	if p.SPFPolicy != spf.PolicyOff || len(p.Rewrites) != 0 {
		t.Fatalf("policy = %+v, want SPF off and no rewrites", p)
	}
}
