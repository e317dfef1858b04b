package admin

import (
	"fmt"
	"net/http"
	"time"

	"outbound/delivery"
	"outbound/queue"
)

// pendingOrRefuse refuses (409) to act on a finished message, whose
// recipients all reached a final status: nothing is left to retry or
// bounce. Not finding it is 404.
func (a *api) pendingOrRefuse(id, action string) error {
	m, err := a.Queue.Get(id)
	if err != nil {
		return err
	}
	if !m.Pending() {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("message %s is finished: nothing left to %s", id, action)}
	}
	return nil
}

func (a *api) retryMessage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.pendingOrRefuse(id, "retry"); err != nil {
		return err
	}
	if err := a.Queue.Reschedule(id, time.Now()); err != nil {
		return err
	}
	a.Logger.Info("retry requested", "id", id)
	writeJSON(w, http.StatusOK, map[string]string{"retrying": id})
	return nil
}

func (a *api) bounceMessage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.pendingOrRefuse(id, "bounce"); err != nil {
		return err
	}
	if err := a.Bouncer.Bounce(id, "550 5.0.0 bounced by the relay's operator"); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"bounced": id})
	return nil
}

func (a *api) deleteMessage(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.Queue.Delete(id); err != nil {
		return err
	}
	a.Logger.Info("message deleted by the operator", "id", id)
	writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
	return nil
}

// flushQueue makes pending messages due now (spread out by the queue),
// all of them or those of one route (?upstream=NAME, "default" for the
// default route).
func (a *api) flushQueue(w http.ResponseWriter, r *http.Request) error {
	upstream := r.URL.Query().Get("upstream")
	n, err := a.Queue.Flush(func(m *queue.Message) bool {
		route := m.Route
		if route == "" {
			route = "default"
		}
		return upstream == "" || route == upstream
	})
	if err != nil {
		return err
	}
	a.Logger.Info("queue flushed", "upstream", upstream, "messages", n)
	writeJSON(w, http.StatusOK, FlushResult{Flushed: n})
	return nil
}

// FlushResult is the answer to POST /api/queue-flush.
type FlushResult struct {
	// Flushed counts the pending messages made due now.
	Flushed int `json:"flushed"`
}

// QueueStats summarises the queue for operators and monitoring: the
// Overview page of the web interface shows it.
type QueueStats struct {
	Messages   int            `json:"messages"`
	Pending    int            `json:"pending"`
	Recipients map[string]int `json:"recipients"`
	Redacted   int            `json:"redacted"`
	// OldestPending is when the oldest unfinished message arrived, and
	// OldestPendingID which message that is.
	OldestPending   *time.Time `json:"oldest_pending,omitempty"`
	OldestPendingID string     `json:"oldest_pending_id,omitempty"`
	// Notifications counts pending messages the relay generated (DSNs).
	Notifications int `json:"notifications_pending"`
	// Accepted24h counts the messages users submitted in the last 24
	// hours (the relay's own notifications not included); Delivered24h
	// and Failed24h the recipients delivered, and failed for good, in
	// that time. Finished messages are kept (as stubs) far longer than a
	// day, so these counts are whole.
	Accepted24h  int `json:"accepted_24h"`
	Delivered24h int `json:"delivered_24h"`
	Failed24h    int `json:"failed_24h"`
	// BackedOff lists the upstreams whose messages wait because the
	// upstream as a whole failed (unreachable, 421, rate limiting), soonest
	// back first.
	BackedOff []delivery.BackedOff `json:"backed_off"`
}

// backoffReporter is what reports backed-off upstreams: the Bouncer, when
// it is the delivery.Deliverer (as in `outbound serve`).
type backoffReporter interface{ BackedOff() []delivery.BackedOff }

func (a *api) queueStats(w http.ResponseWriter, r *http.Request) error {
	st := QueueStats{Recipients: map[string]int{"queued": 0, "delivered": 0, "failed": 0}, BackedOff: []delivery.BackedOff{}}
	dayAgo := time.Now().Add(-24 * time.Hour)
	_, err := a.Queue.List(func(m *queue.Message) bool {
		st.Messages++
		if m.User != "" && m.Created.After(dayAgo) {
			st.Accepted24h++
		}
		for _, rc := range m.Recipients {
			st.Recipients[string(rc.Status)]++
			if rc.Updated.After(dayAgo) {
				switch rc.Status {
				case queue.Delivered:
					st.Delivered24h++
				case queue.Failed:
					st.Failed24h++
				}
			}
		}
		if !m.Redacted.IsZero() {
			st.Redacted++
		}
		if m.Pending() {
			st.Pending++
			if m.From == "" {
				st.Notifications++
			}
			if st.OldestPending == nil || m.Created.Before(*st.OldestPending) {
				created := m.Created
				st.OldestPending, st.OldestPendingID = &created, m.ID
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	if b, ok := a.Bouncer.(backoffReporter); ok {
		st.BackedOff = b.BackedOff()
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
