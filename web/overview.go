package web

import (
	"net/http"
	"sort"

	"outbound/admin"
	"outbound/queue"
)

// OperatorOverview is the operator's Overview: the queue and delivery at
// a glance, from GET /api/queue-stats.
type OperatorOverview struct {
	Stats *admin.QueueStats
	// Routes names the upstreams backed off.
	Routes Routes
}

// SenderOverview is a sender's Overview: its own usage against its
// limits, and its latest messages.
type SenderOverview struct {
	Usage  Usage
	Recent MessageTable
}

// recentOnOverview is how many of a sender's messages the Overview lists.
const recentOnOverview = 5

// overview is GET /.
func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	a, api := currentActor(r), h.api(r)
	if a.Operator() {
		st, err := api.QueueStats()
		if err != nil {
			h.apiFail(w, r, err)
			return
		}
		rs, err := h.routeNames(r)
		if err != nil {
			h.apiFail(w, r, err)
			return
		}
		h.page(w, r, "overview", "overview", OperatorOverview{Stats: st, Routes: rs})
		return
	}
	u, err := api.UserUsage(a.Name)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	msgs, err := api.Messages(admin.QueueFilter{User: a.Name})
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	newestFirst(msgs)
	recent, err := h.messageTable(r, msgs[:min(len(msgs), recentOnOverview)])
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.page(w, r, "overview", "overview", SenderOverview{Usage: newUsage(u, h.Now()), Recent: recent})
}

// newestFirst sorts messages by arrival, the latest first.
func newestFirst(msgs []*queue.Message) {
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].Created.After(msgs[j].Created) })
}
