package auth

import (
	"strings"
	"testing"
)

func TestValidateDisplayName(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string // "" = valid; else a fragment of the error
	}{
		{"empty clears", "", ""},
		{"plain", "Alice Example", ""},
		{"specials are quoted later", `Alice "Ali" O'Brien, Sales (EU)`, ""},
		{"non-ASCII", "Zoë Ærøskøbing – 東京", ""},
		{"exactly 200 bytes", strings.Repeat("a", 200), ""},
		{"201 bytes", strings.Repeat("a", 201), "at most 200"},
		{"200 bytes of UTF-8 plus one", strings.Repeat("é", 100) + "a", "at most 200"},
		{"CRLF injection", "Alice\r\nBcc: victim@example.net", "line breaks"},
		{"bare LF", "Alice\nExample", "line breaks"},
		{"bare CR", "Alice\rExample", "line breaks"},
		{"tab", "Alice\tExample", "control characters"},
		{"NUL", "Alice\x00", "control characters"},
		{"DEL", "Alice\x7f", "control characters"},
		{"C1 control", "Alice\u0085", "control characters"},
		{"Unicode line separator", "Alice\u2028Example", "line breaks"},
		{"invalid UTF-8", "Alice \xff", "UTF-8"},
	} {
		err := ValidateDisplayName(tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: ValidateDisplayName(%q) = %v, want nil", tc.name, tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: ValidateDisplayName(%q) = %v, want an error containing %q", tc.name, tc.in, err, tc.want)
		}
	}
}

func TestValidateReplyTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"empty clears", "", ""},
		{"bare address", "help@example.com", ""},
		{"angle address", "<help@example.com>", ""},
		{"with a name", "Support <help@example.com>", ""},
		{"with a quoted name", `"Support, EU" <help@example.com>`, ""},
		{"UTF-8 name", "Soporte Técnico <help@example.com>", ""},
		{"two addresses", "a@example.com, b@example.com", "not one valid address"},
		{"no domain", "help", "not one valid address"},
		{"no local part", "@example.com", "not one valid address"},
		{"a group", "Team: a@example.com;", "not one valid address"},
		{"CRLF injection", "help@example.com\r\nBcc: victim@example.net", "line breaks"},
		{"bare LF", "help@example.com\n", "line breaks"},
		{"NUL", "help@example.com\x00", "control characters"},
		{"too long", strings.Repeat("a", 490) + "@example.com", "at most 500"},
	} {
		err := ValidateReplyTo(tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: ValidateReplyTo(%q) = %v, want nil", tc.name, tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: ValidateReplyTo(%q) = %v, want an error containing %q", tc.name, tc.in, err, tc.want)
		}
	}
}

// The sender settings survive the JSON round trip through the store, and
// users stored before they existed read back without them.
func TestSenderSettingsAreStored(t *testing.T) {
	s := newStore(t)
	if _, err := s.Add("alice@example.com", "correct horse", nil); err != nil {
		t.Fatal(err)
	}
	u, err := s.Get("alice@example.com")
	if err != nil || u.DisplayName != "" || u.ReplyTo != "" {
		t.Fatalf("new user has sender settings: %+v %v", u, err)
	}
	err = s.Update("alice@example.com", func(u *User) error {
		u.DisplayName, u.ReplyTo = "Zoë Example", "Support <help@example.com>"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if u, err = s.Get("alice@example.com"); err != nil || u.DisplayName != "Zoë Example" || u.ReplyTo != "Support <help@example.com>" {
		t.Fatalf("after update: %+v %v", u, err)
	}
	if _, err := s.Verify("alice@example.com", "correct horse"); err != nil {
		t.Fatalf("updating sender settings broke the password: %v", err)
	}
}
