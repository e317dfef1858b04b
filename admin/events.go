package admin

import (
	"cmp"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"outbound/events"
	"outbound/queue"
)

// MessageDetail is GET /api/messages/{id}: the message as GET
// /api/queue/{id} gives it, and its timeline from submission to its final
// fate, oldest first.
//
// In a cluster (several nodes sharing their state, docs/cluster.md) a
// message queued on another node has no queue record here: Message is nil
// and Node names the node that holds it; its timeline is the shared one.
type MessageDetail struct {
	*queue.Message
	Events []events.Event `json:"events"`
	// Node is the node whose queue holds the message, when it is not this
	// one.
	Node string `json:"node,omitempty"`
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
	if errors.Is(err, queue.ErrNotFound) {
		if d, ok, err := a.elsewhere(id); err != nil || ok {
			if ok {
				writeJSON(w, http.StatusOK, d)
			}
			return err
		}
	}
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

// elsewhere is the detail of message id when another node holds it (a
// cluster): its events in the shared log, which name the node
// (events.Event.Node), and the message as far as they tell it (told).
// ok is false when the log knows no such message, or knows it as this
// node's.
func (a *api) elsewhere(id string) (d MessageDetail, ok bool, err error) {
	if a.Events == nil {
		return d, false, nil
	}
	evs, err := a.Events.ForMessage(id)
	if err != nil || len(evs) == 0 {
		return d, false, err
	}
	t := newTold()
	for _, e := range evs {
		t.add(e)
	}
	m := t.message()
	if !a.otherNode(m.Node) {
		return d, false, nil
	}
	return MessageDetail{Message: m, Events: evs, Node: m.Node}, true, nil
}

// otherNode says whether node names another node than this one: a
// message whose events name no node is this node's (a single relay
// records none).
func (a *api) otherNode(node string) bool { return node != "" && node != a.Node }

// told is what a message's events tell of it, for a message another node
// holds (no queue record here), gathered in any order: events are placed
// by their ID, which sorts as the log does (time, then arrival).
//
// It knows the ID, user, node, Message-ID, tags and metadata; each
// recipient's latest state (received or deferred: queued; relayed:
// delivered; failed: failed) with its reply and attempt count; when the
// message was received, finished and redacted. The envelope sender, size,
// route and attempt history are the holding node's alone: they stay empty.
// What providers report later does not change a recipient's state, as it
// does not in the queue either; the timeline shows it.
type told struct {
	m        queue.Message
	received bool
	// nodeAt, first and last are event IDs: of the event the node is
	// from, of each recipient's earliest event (their order) and of the
	// one its state is from.
	nodeAt      string
	first, last map[string]string
	rcpts       map[string]*queue.Recipient
	earliest    time.Time
}

func newTold() *told {
	return &told{first: map[string]string{}, last: map[string]string{}, rcpts: map[string]*queue.Recipient{}}
}

func (t *told) add(e events.Event) {
	m := &t.m
	m.ID = e.Message
	if e.Node != "" && e.ID >= t.nodeAt {
		m.Node, t.nodeAt = e.Node, e.ID
	}
	if e.User != "" {
		m.User = e.User
	}
	if e.MessageID != "" {
		m.MessageID = e.MessageID
	}
	if e.Tags != nil || e.Metadata != nil {
		m.Tags, m.Metadata = e.Tags, e.Metadata
	}
	if t.earliest.IsZero() || e.At.Before(t.earliest) {
		t.earliest = e.At
	}
	var status queue.Status
	switch e.Kind {
	case events.Received:
		if !t.received || e.At.Before(m.Created) {
			m.Created = e.At
		}
		t.received = true
		status = queue.Queued
	case events.Deferred:
		status = queue.Queued
	case events.Relayed:
		status = queue.Delivered
	case events.Failed:
		status = queue.Failed
	case events.Redacted:
		m.Redacted = e.At
	}
	if status == "" || e.Recipient == "" {
		return
	}
	rc := t.rcpts[e.Recipient]
	if rc == nil {
		rc = &queue.Recipient{Addr: e.Recipient}
		t.rcpts[e.Recipient] = rc
		t.first[e.Recipient] = e.ID
	}
	t.first[e.Recipient] = min(t.first[e.Recipient], e.ID)
	if e.ID < t.last[e.Recipient] {
		return // a later event told its state already
	}
	t.last[e.Recipient] = e.ID
	rc.Status, rc.Reply, rc.Updated = status, e.Reply, e.At
	if e.Attempt > 0 {
		rc.Attempts = e.Attempt
	}
}

// message is the message as told so far: recipients in the order they
// first appear in the log; finished when every one reached a final state.
func (t *told) message() *queue.Message {
	m := t.m
	if !t.received {
		m.Created = t.earliest
	}
	m.Recipients = make([]queue.Recipient, 0, len(t.rcpts))
	for _, rc := range t.rcpts {
		m.Recipients = append(m.Recipients, *rc)
	}
	slices.SortFunc(m.Recipients, func(x, y queue.Recipient) int {
		return cmp.Or(cmp.Compare(t.first[x.Addr], t.first[y.Addr]), cmp.Compare(x.Addr, y.Addr))
	})
	if len(m.Recipients) > 0 && !m.Pending() {
		for _, rc := range m.Recipients {
			if rc.Updated.After(m.Finished) {
				m.Finished = rc.Updated
			}
		}
	}
	return &m
}

// The queue listing's look at the shared event log for the messages other
// nodes hold is bounded, so that a listing costs the same on a log of
// months: it reads the log backwards in time, in windows of
// elsewhereSpan, twice as long each time, and stops at the first of
// elsewhereMax messages received (of those the listing asks for),
// elsewhereEvents events read, or the start of the log. A message
// received before that is still shown by GET /api/messages/{id}.
const (
	elsewhereMax    = 1000
	elsewhereEvents = 10000
	elsewhereSpan   = 15 * time.Minute
)

// listElsewhere lists the messages other nodes hold that the shared event
// log names (a cluster, Options.Node set), the newest first: those mine
// keeps, at most elsewhereMax, as told (a message whose received event is
// beyond what was read is left out). Nothing when this is no cluster.
func (a *api) listElsewhere(mine func(*queue.Message) bool) ([]*queue.Message, error) {
	if a.Node == "" || a.Events == nil {
		return nil, nil
	}
	start, err := a.Events.List(events.Query{Limit: 1})
	if err != nil || len(start.Events) == 0 {
		return nil, err
	}
	oldest := start.Events[0].At
	msgs := map[string]*told{}
	var out []*queue.Message
	read, span := 0, elsewhereSpan
	var hi time.Time // the first window reaches to the end of the log
	for {
		lo := time.Now().Add(-span)
		if !hi.IsZero() {
			lo = hi.Add(-span)
		}
		n, err := a.scanWindow(lo, hi, elsewhereEvents-read, msgs)
		if err != nil {
			return nil, err
		}
		read += n
		out = out[:0]
		for _, t := range msgs {
			if m := t.message(); t.received && a.otherNode(m.Node) && mine(m) {
				out = append(out, m)
			}
		}
		if len(out) >= elsewhereMax || read >= elsewhereEvents || !lo.After(oldest) {
			break
		}
		hi, span = lo, span*2
	}
	slices.SortFunc(out, func(x, y *queue.Message) int { return y.Created.Compare(x.Created) })
	return out[:min(len(out), elsewhereMax)], nil
}

// scanWindow folds the events from lo until hi (zero: the end of the
// log) into msgs, at most budget of them, and says how many it read.
func (a *api) scanWindow(lo, hi time.Time, budget int, msgs map[string]*told) (int, error) {
	q := events.Query{Since: lo}
	n := 0
	for n < budget {
		q.Limit = min(events.MaxLimit, budget-n)
		page, err := a.Events.List(q)
		if err != nil {
			return n, err
		}
		for _, e := range page.Events {
			if !hi.IsZero() && !e.At.Before(hi) {
				return n, nil
			}
			n++
			if e.Message == "" {
				continue // about no message (a webhook disabled)
			}
			t := msgs[e.Message]
			if t == nil {
				t = newTold()
				msgs[e.Message] = t
			}
			t.add(e)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	return n, nil
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
