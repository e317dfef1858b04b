package quota

import (
	"errors"
	"fmt"
	"time"
)

// ExceededError says that a user's recipients do not fit in a window. Its
// text is written for the sender, so the relay can put it in the SMTP reply:
// it names the limit and when to try again.
type ExceededError struct {
	User      string        // whose limit
	Window    string        // Hourly or Daily: the window holding the message back longest
	Limit     int           // that window's limit
	Requested int           // recipients asked for, including pending ones
	RetryIn   time.Duration // wait until Requested fits; 0 when no wait will do, because Limit is below Requested
	// Nodes is set when the limit was judged on one node of a cluster
	// whose shared counts could not be reached (Shared): Limit is then
	// this node's share, the user's limit divided by Nodes.
	Nodes int
}

// Error reads, for example:
//
//	hourly limit of 50 reached for alice@example.com; next slot in 12m
//	daily limit of 0 for alice@example.com allows no sending
//	60 recipients exceed the hourly limit of 50 for alice@example.com
//
// and, judged on a node's share (Nodes set):
//
//	hourly limit of 16 (this node's share of the limit while the shared counts cannot be reached) reached for alice@example.com; next slot in 12m
func (e *ExceededError) Error() string {
	switch {
	case e.RetryIn > 0:
		return fmt.Sprintf("%s limit of %d%s reached for %s; next slot in %s", e.Window, e.Limit, e.shareNote(), e.User, humanDuration(e.RetryIn))
	case e.Limit <= 0:
		return fmt.Sprintf("%s limit of %d for %s allows no sending", e.Window, e.Limit, e.User)
	default:
		return fmt.Sprintf("%d recipients exceed the %s limit of %d%s for %s", e.Requested, e.Window, e.Limit, e.shareNote(), e.User)
	}
}

func (e *ExceededError) shareNote() string {
	if e.Nodes == 0 {
		return ""
	}
	return " (this node's share of the limit while the shared counts cannot be reached)"
}

// ErrUnavailable is the error (wrapped) of a Shared's Check and Hold when
// the limits cannot be judged: the database cannot be reached and this
// node cannot judge on its own (see the package doc). It is temporary; the
// relay answers 451 4.3.0.
var ErrUnavailable = errors.New("sending limits cannot be checked right now")

// Temporary reports whether waiting RetryIn lets the same request through.
// When it does not, the sender has to split the message or ask the
// operator for a higher limit.
func (e *ExceededError) Temporary() bool { return e.RetryIn > 0 }

// humanDuration renders d for people, rounded up so the sender is never
// told to come back too early: "40s", "12m", "1h05m".
func humanDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if s := (d + time.Second - 1) / time.Second; s < 60 {
		return fmt.Sprintf("%ds", s)
	}
	m := (d + time.Minute - 1) / time.Minute
	if m < 60 {
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%dh%02dm", m/60, m%60)
}
