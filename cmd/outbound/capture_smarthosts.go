package main

import "outbound/config"

// refuseCaptureSmarthosts says whether smarthosts of kind capture must be
// refused (admin.Options.RefuseCaptureSmarthosts): exactly when the
// configuration's own check would refuse default_route.mode = "capture"
// here (a production-looking relay without allow_capture_in_production).
// It asks that check, on a copy of cfg with the capture route, so that
// the two rules cannot drift apart; cfg itself passed Validate at load,
// and Validate neither changes the config nor reads files, so any error
// is the capture check's.
func refuseCaptureSmarthosts(cfg config.Config) bool {
	cfg.DefaultRoute.Mode = "capture"
	return cfg.Validate() != nil
}
