package auth

import (
	"strings"
	"testing"
)

// A generated password is 20 characters of the unambiguous alphabet, and
// no two are alike.
func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		p := GeneratePassword()
		if len(p) != 20 {
			t.Fatalf("password %q has %d characters, want 20", p, len(p))
		}
		for _, c := range p {
			if !strings.ContainsRune(passwordAlphabet, c) || strings.ContainsRune("0O1lI", c) {
				t.Fatalf("password %q has %q, outside the unambiguous alphabet", p, c)
			}
		}
		if seen[p] {
			t.Fatalf("password %q generated twice", p)
		}
		seen[p] = true
	}
}
