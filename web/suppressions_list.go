package web

import (
	"net/http"
	"time"

	"outbound/suppression"
)

// SuppressionsPage is the Suppressions page (operators): every active
// suppression, with the Add suppression form.
type SuppressionsPage struct {
	Table SuppressionTable
	Add   SuppressionForm
}

// SuppressionTable is what the suppression-table partial draws: the
// entries, each with a Lift button; Operator adds the User column.
type SuppressionTable struct {
	Entries  []suppression.Entry
	Operator bool
	Now      time.Time
}

// SuppressionForm is the Add suppression form as entered, and the API's
// refusal.
type SuppressionForm struct {
	Addr, User, Reason string
	Error              string
}

// suppressionsList is GET /suppressions. A sender's own list is part of
// its Messages page (it has no nav entry of its own, which keeps a
// phone's navigation short), so a sender is sent there.
func (h *handler) suppressionsList(w http.ResponseWriter, r *http.Request) {
	if !currentActor(r).Operator() {
		http.Redirect(w, r, "/messages#suppressions", http.StatusSeeOther)
		return
	}
	h.showSuppressions(w, r, http.StatusOK, SuppressionForm{})
}

// showSuppressions draws the operators' page with status, the Add form
// as given.
func (h *handler) showSuppressions(w http.ResponseWriter, r *http.Request, status int, add SuppressionForm) {
	t, err := h.suppressionTable(r)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.render(w, r, status, "suppressions", "suppressions", SuppressionsPage{Table: *t, Add: add})
}

// suppressionTable is the actor's suppressions: every list for an
// operator, its own for a sender (the API itself keeps a sender to its
// own).
func (h *handler) suppressionTable(r *http.Request) (*SuppressionTable, error) {
	list, err := h.api(r).Suppressions("")
	if err != nil {
		return nil, err
	}
	return &SuppressionTable{Entries: list, Operator: currentActor(r).Operator(), Now: h.Now()}, nil
}
