package quota

// Limiter is what the relay, the admin API and the web interface ask of
// a user's sending limits, whichever way the counts are kept: Store keeps
// them in the relay's bbolt file (one node), Shared in PostgreSQL (several
// nodes sharing one count per user).
//
// The relay calls Check at RCPT, Hold once the message is about to be
// queued, puts Reservation.Write in the queue's transaction (a no-op for a
// Shared hold, which is already committed), and calls Release if queueing
// failed. Usage, Hourly and Users are for display.
type Limiter interface {
	Check(user string, lim Limits, pending, n int) error
	Hold(user string, lim Limits, n int) (Reservation, error)
	Release(r Reservation) error
	Usage(user string, lim Limits) Usage
	Hourly(user string) [24]int
	Users() []string
}

var (
	_ Limiter = (*Store)(nil)
	_ Limiter = (*Shared)(nil)
)
