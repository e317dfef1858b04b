package web

import (
	"net/http"

	"outbound/events"
	"outbound/queue"
)

// MessagePage is a message's page: envelope, size, route, recipients with
// their state, the attempts, and the actions that still make sense.
type MessagePage struct {
	M *queue.Message
	// Pending allows Retry now and Bounce; Delete is always offered.
	Pending bool
	// Back is the list the message belongs to: /queue or /messages.
	Back string
	// Routes names its route and its attempts' upstreams.
	Routes Routes
	// Events is the message's timeline, per recipient, oldest first.
	Events []events.Event
	// Node is the node whose queue holds the message when it is not this
	// one (a cluster): M is then what the shared event log tells of it
	// (admin.MessageDetail), and the page offers no action, which only
	// that node can take.
	Node string
}

// messageShow is GET /queue/{id}. The API answers a sender only for its
// own messages (404 otherwise, the same page as a message that does not
// exist).
func (h *handler) messageShow(w http.ResponseWriter, r *http.Request) {
	d, err := h.api(r).MessageDetail(r.PathValue("id"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	m := d.Message
	if m == nil {
		// Another node's, from an API that tells only its events.
		m = &queue.Message{ID: r.PathValue("id"), Node: d.Node}
	}
	rs, err := h.routeNames(r)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	p := MessagePage{M: m, Node: d.Node, Back: "/" + listNav(r), Routes: rs, Events: d.Events}
	p.Pending = p.Node == "" && m.Pending()
	h.page(w, r, "message_show", listNav(r), p)
}

// listNav is the navigation entry of the messages for the actor:
// "queue" for operators, "messages" for senders.
func listNav(r *http.Request) string {
	if currentActor(r).Operator() {
		return "queue"
	}
	return "messages"
}
