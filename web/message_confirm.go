package web

import (
	"net/http"

	"outbound/queue"
)

// Retry now, Bounce and Delete each ask first: the button on the message
// page opens a confirmation page (GET), whose button posts the action
// with confirmed=yes. A POST without it only shows the confirmation, so
// no action happens on one click, with or without JavaScript.

// messageAction describes one of those actions for its confirmation page.
type messageAction struct {
	// Path is the last path element: "retry", "bounce", "delete".
	Path string
	// Button is the visible name of the button, on both pages.
	Button string
	// Question heads the confirmation page; Explain says what follows.
	Question, Explain string
	// Danger styles the button as destructive.
	Danger bool
}

var (
	retryAction = messageAction{Path: "retry", Button: "Retry now", Question: "Retry this message now?",
		Explain: "Its queued recipients are attempted again at once, instead of at the next scheduled attempt."}
	bounceAction = messageAction{Path: "bounce", Button: "Bounce", Danger: true, Question: "Bounce this message?",
		Explain: "Delivery stops: every recipient still queued fails, and the sender gets a delivery status notification saying so."}
	deleteAction = messageAction{Path: "delete", Button: "Delete", Danger: true, Question: "Delete this message?",
		Explain: "The message and its history are removed for good, without telling the sender."}
)

// ConfirmPage is the data of the confirmation page.
type ConfirmPage struct {
	M      *queue.Message
	Action messageAction
}

// messageConfirm is GET /queue/{id}/retry|bounce|delete: the question.
func (h *handler) messageConfirm(act messageAction) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.confirmMessage(w, r, act)
	}
}

// confirmMessage shows act's confirmation page for the message of the
// request's path, if the actor may see it.
func (h *handler) confirmMessage(w http.ResponseWriter, r *http.Request, act messageAction) {
	m, err := h.api(r).Message(r.PathValue("id"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.page(w, r, "message_confirm", listNav(r), ConfirmPage{M: m, Action: act})
}

// confirmed reports whether a POST carries the confirmation; when not, it
// shows the confirmation page instead.
func (h *handler) confirmed(w http.ResponseWriter, r *http.Request, act messageAction) bool {
	if r.PostFormValue("confirmed") == "yes" {
		return true
	}
	h.confirmMessage(w, r, act)
	return false
}
