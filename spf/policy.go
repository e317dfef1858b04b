package spf

import (
	"fmt"
	"strings"
)

// Policy says what the relay does with a Check result.
type Policy string

// The policies.
const (
	// PolicyOff skips the check.
	PolicyOff Policy = "off"
	// PolicyWarn checks and reports (logs, metrics, the sender's
	// notifications) but accepts the mail whatever the verdict.
	PolicyWarn Policy = "warn"
	// PolicyEnforce refuses mail whose sender domain does not authorize
	// the upstream, with Result.Fix in the reply.
	PolicyEnforce Policy = "enforce"
)

// ParsePolicy parses "off", "warn" or "enforce" (any case, surrounding
// spaces ignored).
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case PolicyOff, PolicyWarn, PolicyEnforce:
		return p, nil
	}
	return "", fmt.Errorf("SPF policy %q is not one of off, warn, enforce", s)
}
