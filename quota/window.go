package quota

import (
	"slices"
	"time"
)

// window is one user's minute buckets, oldest first, none empty. A user has
// at most 1440 of them (fewer when sends cluster), so plain scans are cheap
// next to the fsync every reservation pays.
type window struct {
	b []bucket
}

type bucket struct {
	minute int64 // unix minute
	n      int   // recipients counted in it, at least 1
}

func (w *window) empty() bool { return w == nil || len(w.b) == 0 }

// prune drops the buckets at or before cutoff, which no window reaches.
func (w *window) prune(cutoff int64) {
	i := 0
	for i < len(w.b) && w.b[i].minute <= cutoff {
		i++
	}
	if i > 0 {
		w.b = append(w.b[:0], w.b[i:]...)
	}
}

func (w *window) find(minute int64) (int, bool) {
	return slices.BinarySearchFunc(w.b, minute, func(b bucket, m int64) int {
		switch {
		case b.minute < m:
			return -1
		case b.minute > m:
			return 1
		}
		return 0
	})
}

// add counts n in minute's bucket. Nearly always that is the last bucket,
// but a clock stepped back may land earlier, so it inserts in order.
func (w *window) add(minute int64, n int) {
	i, ok := w.find(minute)
	if ok {
		w.b[i].n += n
		return
	}
	w.b = slices.Insert(w.b, i, bucket{minute, n})
}

// sub removes up to n from minute's bucket and returns how many it removed.
func (w *window) sub(minute int64, n int) int {
	i, ok := w.find(minute)
	if !ok {
		return 0
	}
	took := min(n, w.b[i].n)
	w.b[i].n -= took
	if w.b[i].n == 0 {
		w.b = slices.Delete(w.b, i, i+1)
	}
	return took
}

// hourCounts returns the counts of hour's 60 minutes, its first minute
// first, leaving out minutes at or before cutoff: what an hour key holds.
func (w *window) hourCounts(hour, cutoff int64) (counts [hourMinutes]uint32) {
	if w == nil {
		return counts
	}
	first := hour * hourMinutes
	i, _ := w.find(first)
	for ; i < len(w.b) && w.b[i].minute < first+hourMinutes; i++ {
		if m := w.b[i].minute; m > cutoff {
			counts[m-first] = uint32(min(w.b[i].n, maxBucketCount))
		}
	}
	return counts
}

// sum counts the recipients in buckets after cutoff. Buckets after now
// (from a clock stepped back) are counted too: erring towards refusing.
func (w *window) sum(cutoff int64) int {
	if w == nil {
		return 0
	}
	total := 0
	for i := len(w.b) - 1; i >= 0 && w.b[i].minute > cutoff; i-- {
		total += w.b[i].n
	}
	return total
}

// fitsIn reports when need more recipients fit in the window of length
// minutes ending now under limit: ok with wait 0 if they fit now, ok with
// the wait until enough of the oldest buckets have dropped out otherwise,
// and !ok if no wait helps (the limit is below need).
func (w *window) fitsIn(length int64, limit, need int, now time.Time) (wait time.Duration, ok bool) {
	cutoff := unixMinute(now) - length
	used := w.sum(cutoff)
	if used+need <= limit {
		return 0, true
	}
	if need > limit {
		return 0, false
	}
	// Walk the window's buckets oldest first: each leaves the window when
	// its minute is length minutes old. Freeing every bucket leaves room
	// for need <= limit, so the loop always returns.
	freed := 0
	for _, b := range w.b {
		if b.minute <= cutoff {
			continue
		}
		freed += b.n
		if used-freed+need <= limit {
			return minuteStart(b.minute + length).Sub(now), true
		}
	}
	// Unreachable while every bucket holds at least 1; answer "a full
	// window from now" rather than crash the server.
	return time.Duration(length) * time.Minute, true
}

// exceeded returns nil if need more recipients fit in both windows now, or
// an *ExceededError for the window that holds them back longest. A window
// no wait can help wins over one that frees in time.
func (w *window) exceeded(user string, lim Limits, need int, now time.Time) error {
	hWait, hOK := w.fitsIn(hourMinutes, lim.PerHour, need, now)
	dWait, dOK := w.fitsIn(dayMinutes, lim.PerDay, need, now)
	var e *ExceededError
	switch {
	case !hOK:
		e = &ExceededError{Window: Hourly, Limit: lim.PerHour}
	case !dOK:
		e = &ExceededError{Window: Daily, Limit: lim.PerDay}
	case hWait == 0 && dWait == 0:
		return nil
	case dWait > hWait:
		// Both windows only drain from here on, so the message fits
		// when the later of the two has drained enough.
		e = &ExceededError{Window: Daily, Limit: lim.PerDay, RetryIn: dWait}
	default:
		e = &ExceededError{Window: Hourly, Limit: lim.PerHour, RetryIn: hWait}
	}
	e.User = user
	e.Requested = need
	return e
}
