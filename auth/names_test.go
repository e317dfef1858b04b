package auth

import (
	"strings"
	"testing"
)

// The web interface's form for adding a user lives at /users/new, so a
// user named "new" could never be opened there.
func TestUserNameNewIsReserved(t *testing.T) {
	if err := ValidateName("new"); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf(`user name "new": %v, want refused as reserved`, err)
	}
	if err := ValidateName("news@example.com"); err != nil {
		t.Errorf("news@example.com: %v", err)
	}
}
