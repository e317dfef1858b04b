package config

import "testing"

// FuzzParse: any text either loads into a configuration that validates or
// is refused with an error; it never panics.
func FuzzParse(f *testing.F) {
	f.Add("hostname = \"relay.example.com\"\n[submission]\nmax_recipients = 5\n")
	f.Add("[retry]\nschedule = [\"1m\", \"5d\"]\nmax_lifetime = \"5d\"\n")
	f.Add("[default_route]\ntls = \"none\"\nhost = \"127.0.0.1\"\n")
	f.Add("[limits]\nmax_per_day = 1\n")
	f.Add("x = [")
	f.Fuzz(func(t *testing.T, text string) {
		cfg := Default()
		if err := Parse(&cfg, text); err != nil {
			return
		}
		cfg.Validate()
	})
}
