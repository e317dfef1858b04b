package admin

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"outbound/events"
	"outbound/queue"
)

// MessageDetail is GET /api/messages/{id}: the message as GET
// /api/queue/{id} gives it, and its timeline from submission to its final
// fate, oldest first.
type MessageDetail struct {
	*queue.Message
	Events []events.Event `json:"events"`
}

// EventsPage is GET /api/events: a page of events, oldest first.
type EventsPage struct {
	Events []events.Event `json:"events"`
	// NextCursor continues the listing after this page. It is set whenever
	// there is a place to continue from (the last event seen), also at the
	// end, so that a follower polls with it for newer events.
	NextCursor string `json:"next_cursor,omitempty"`
	// More says that events after NextCursor are waiting now; false when
	// the page reached the end of the log.
	More bool `json:"more"`
}

func (a *api) showMessageDetail(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	m, err := a.Queue.Get(id)
	if err != nil {
		return err
	}
	d := MessageDetail{Message: m, Events: []events.Event{}}
	if a.Events != nil {
		evs, err := a.Events.ForMessage(id)
		if err != nil {
			return err
		}
		if evs != nil {
			d.Events = evs
		}
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// listEvents pages through the event log. A sender sees only its own
// messages' events, whatever it asks for.
func (a *api) listEvents(w http.ResponseWriter, r *http.Request) error {
	if a.Events == nil {
		return &httpError{status: http.StatusNotImplemented, msg: "this server keeps no event log"}
	}
	p := r.URL.Query()
	q := events.Query{User: p.Get("user"), Cursor: p.Get("cursor")}
	if s := actingSender(r); s != "" {
		if q.User != "" && q.User != s {
			return forbidden("sender %s may see only its own events, not %s's", s, q.User)
		}
		q.User = s
	}
	if v := p.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return badRequest("since must be a time in RFC 3339 form (2006-01-02T15:04:05Z), got %q", v)
		}
		q.Since = t
	}
	if q.Cursor != "" {
		// A cursor is an event's ID: 16 bytes in hex (events.Bolt).
		if b, err := hex.DecodeString(q.Cursor); err != nil || len(b) != 16 {
			return badRequest("cursor must be the next_cursor of an earlier page (an event's id), got %q", q.Cursor)
		}
	}
	if v := p.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > events.MaxLimit {
			return badRequest("limit must be a number from 1 to %d, got %q", events.MaxLimit, v)
		}
		q.Limit = n
	}
	page, err := a.Events.List(q)
	if err != nil {
		return err
	}
	out := EventsPage{Events: page.Events, NextCursor: page.Next, More: page.Next != ""}
	if out.Events == nil {
		out.Events = []events.Event{}
	}
	if out.NextCursor == "" {
		out.NextCursor = q.Cursor
		if n := len(out.Events); n > 0 {
			out.NextCursor = out.Events[n-1].ID
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
