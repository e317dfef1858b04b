package config

import (
	"strings"
	"testing"
	"time"
)

func TestWebSessionIdle(t *testing.T) {
	if got := Default().Web.SessionIdle.D(); got != 30*time.Minute {
		t.Errorf("default web.session_idle = %v, want 30m", got)
	}
	cfg := Default()
	if err := Parse(&cfg, "[web]\nsession_idle = \"10m\"\n"); err != nil || cfg.Web.SessionIdle.D() != 10*time.Minute {
		t.Errorf("session_idle = \"10m\": %v, %v", cfg.Web.SessionIdle, err)
	}
	if err := loadText(t, "[web]\nsession_idle = \"0s\""); err == nil || !strings.Contains(err.Error(), "web.session_idle") {
		t.Errorf("session_idle = 0: %v, want an error naming web.session_idle", err)
	}
}
