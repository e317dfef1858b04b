package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in the config as a string: Go's
// syntax ("90s", "1h30m") plus whole days ("5d", "30d"), which mail
// operators use for lifetimes and retention. "0" is zero.
type Duration time.Duration

// ParseDuration parses the config syntax described on Duration.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q: days must be a whole number such as \"5d\"", s)
		}
		return Duration(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use forms like \"90s\", \"4h\" or \"5d\"", s)
	}
	return Duration(d), nil
}

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText writes whole days as "Nd" and everything else in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", td/(24*time.Hour))
	}
	return td.String()
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
