package main

import (
	"testing"

	"outbound/config"
)

// Capture smarthosts are refused where the capture route would be: on a
// production-looking relay, unless allow_capture_in_production is set;
// never on loopback listeners, whatever the default route's mode.
func TestRefuseCaptureSmarthostsFollowsTheConfigCheck(t *testing.T) {
	local := config.Default()
	local.Submission.ImplicitTLS, local.Submission.StartTLS, local.Admin.Listen = "127.0.0.1:465", "127.0.0.1:587", "127.0.0.1:8025"
	if err := local.Validate(); err != nil {
		t.Fatal(err)
	}
	if refuseCaptureSmarthosts(local) {
		t.Error("refused on a relay listening on loopback only")
	}
	public := local
	public.DefaultRoute.Mode, public.DefaultRoute.Host, public.DefaultRoute.Port, public.DefaultRoute.TLSMode = "smtp", "smtp.example.com", 587, "starttls"
	public.Submission.StartTLS = "0.0.0.0:587"
	if err := public.Validate(); err != nil {
		t.Fatal(err)
	}
	if !refuseCaptureSmarthosts(public) {
		t.Error("not refused on a relay listening on 0.0.0.0:587")
	}
	if public.DefaultRoute.Mode != "smtp" {
		t.Error("the check changed the configuration")
	}
	public.AllowCaptureInProduction = true
	if refuseCaptureSmarthosts(public) {
		t.Error("refused despite allow_capture_in_production = true")
	}
}
