package web

import (
	"net/http"
	"time"

	"outbound/capture"
)

// CapturedList is the Captured page (operators): the messages the capture
// route kept instead of sending, newest first, filtered as the API is.
type CapturedList struct {
	To, Subject string
	Messages    []capture.Message
	Now         time.Time
}

// capturedList is GET /captured?to=&subject=.
func (h *handler) capturedList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := CapturedList{To: q.Get("to"), Subject: q.Get("subject"), Now: h.Now()}
	list, err := h.api(r).Captured(page.To, page.Subject)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	if len(list) > listLimit {
		list = list[:listLimit]
	}
	page.Messages = list
	h.page(w, r, "captured_list", "captured", page)
}
