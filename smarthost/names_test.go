package smarthost

import (
	"strings"
	"testing"
)

// The web interface's form for adding a smarthost lives at /smarthosts/new,
// so a smarthost named "new" could never be opened there.
func TestSmarthostNameNewIsReserved(t *testing.T) {
	if err := ValidateName("new"); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf(`smarthost name "new": %v, want refused as reserved`, err)
	}
	if err := ValidateName("newsletter"); err != nil {
		t.Errorf("newsletter: %v", err)
	}
}
