package route

import (
	"testing"

	"outbound/auth"
	"outbound/smarthost"
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

// A smarthost of kind capture resolves to the capture upstream under its
// own name, with SPF off and no header rewrites whatever the default
// route's policy, while the default route still sends.
func TestCaptureSmarthostResolvesToCaptureUpstream(t *testing.T) {
	r := newRig(t, sendgrid)
	if _, err := r.hosts.Add(smarthost.Smarthost{Name: "staging", Kind: smarthost.KindCapture}, ""); err != nil {
		t.Fatal(err)
	}
	up, err := r.Upstream("staging")
	if err != nil {
		t.Fatal(err)
	}
	if !up.Capture || up.Name != "staging" || up.Host != CaptureHost || up.Password != "" || up.Fallback != nil {
		t.Fatalf("upstream = %+v, want the capture upstream named staging", up)
	}
	if def, _ := r.Upstream(""); def.Capture {
		t.Fatal("the default route captures too")
	}
	p := r.Policy(&auth.User{Route: "staging"})
	if p.SPFPolicy != spf.PolicyOff || len(p.Rewrites) != 0 {
		t.Fatalf("policy = %+v, want SPF off and no rewrites", p)
	}
}

// An smtp smarthost made of kind capture is captured at the next attempt:
// the router does not keep the upstream it built before.
func TestSmarthostMadeCaptureTakesEffect(t *testing.T) {
	r := newRig(t, sendgrid)
	r.add(t, smarthost.Smarthost{Name: "sg"}, "pw")
	if up, err := r.Upstream("sg"); err != nil || up.Capture {
		t.Fatalf("before: %+v, %v", up, err)
	}
	err := r.hosts.Update("sg", nil, func(h *smarthost.Smarthost) error {
		*h = smarthost.Smarthost{Name: h.Name, Kind: smarthost.KindCapture, Created: h.Created}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if up, err := r.Upstream("sg"); err != nil || !up.Capture || up.Password != "" {
		t.Fatalf("after: %+v, %v; want the capture upstream", up, err)
	}
}
