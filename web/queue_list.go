package web

import (
	"net/http"
	"time"

	"outbound/admin"
	"outbound/queue"
)

// QueueList is the Queue page (operators) and the Messages page
// (senders): messages filtered by status and, for operators, by user.
type QueueList struct {
	// Heading is "Queue" or "Messages"; Action the filter form's path.
	Heading, Action string
	Filter          admin.QueueFilter
	// Operator shows the user filter.
	Operator bool
	// Table holds at most listLimit of the messages, the newest.
	Table MessageTable
	// Total is how many matched.
	Total int
	// Suppressions is a sender's suppression list, on its Messages page;
	// nil for operators (theirs is a page) or when the relay keeps none.
	Suppressions *SuppressionTable
}

// MessageTable is what the message-table partial draws: messages, each
// linking to its page, their routes named for people, and their arrival
// as short as is clear next to Now.
type MessageTable struct {
	Messages []*queue.Message
	Routes   Routes
	Now      time.Time
}

// messageTable makes the table of msgs for the request's actor.
func (h *handler) messageTable(r *http.Request, msgs []*queue.Message) (MessageTable, error) {
	rs, err := h.routeNames(r)
	return MessageTable{Messages: msgs, Routes: rs, Now: h.Now()}, err
}

// listLimit bounds a page of messages: the newest are shown, and the
// filters narrow the rest down.
const listLimit = 200

// queueList is GET /queue?status=&user= (operators).
func (h *handler) queueList(w http.ResponseWriter, r *http.Request) {
	f := admin.QueueFilter{Status: r.URL.Query().Get("status"), User: r.URL.Query().Get("user")}
	h.listMessages(w, r, QueueList{Heading: "Queue", Action: "/queue", Filter: f, Operator: true}, "queue")
}

// messagesList is GET /messages?status= (a sender's own messages; the
// API itself keeps to them). An operator is sent to the Queue.
func (h *handler) messagesList(w http.ResponseWriter, r *http.Request) {
	a := currentActor(r)
	if a.Operator() {
		http.Redirect(w, r, "/queue", http.StatusSeeOther)
		return
	}
	f := admin.QueueFilter{Status: r.URL.Query().Get("status"), User: a.Name}
	p := QueueList{Heading: "Messages", Action: "/messages", Filter: f}
	// The recipients the relay refuses for this sender, with how to lift
	// them: the 550 5.1.1 reply sends the sender here.
	t, err := h.suppressionTable(r)
	switch {
	case err == nil:
		p.Suppressions = t
	case apiStatus(err) != http.StatusNotImplemented:
		h.apiFail(w, r, err)
		return
	}
	h.listMessages(w, r, p, "messages")
}

func (h *handler) listMessages(w http.ResponseWriter, r *http.Request, p QueueList, nav string) {
	msgs, err := h.api(r).Messages(p.Filter)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	newestFirst(msgs)
	p.Total = len(msgs)
	if p.Table, err = h.messageTable(r, msgs[:min(len(msgs), listLimit)]); err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.page(w, r, "queue_list", nav, p)
}
