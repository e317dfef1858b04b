package admin

import (
	"net/http"
	"time"

	"outbound/auth"
	"outbound/quota"
)

// UsageView is one user's sending in the sliding windows and its limits.
type UsageView struct {
	User          string `json:"user"`
	SentLastHour  int    `json:"sent_last_hour"`
	SentLastDay   int    `json:"sent_last_day"`
	PerHour       int    `json:"per_hour"`
	PerDay        int    `json:"per_day"`
	RemainingHour int    `json:"remaining_hour"`
	RemainingDay  int    `json:"remaining_day"`
	// LimitsOverridden says the limits are the user's own, not its route's defaults.
	LimitsOverridden bool `json:"limits_overridden"`
	// NextSlot is when room frees up, when a window is full.
	NextSlot *time.Time `json:"next_slot,omitempty"`
}

func (a *api) usageOf(u *auth.User) UsageView {
	lim := a.LimitsFor(u)
	us := a.Quota.Usage(u.Name, lim)
	v := UsageView{
		User: u.Name, SentLastHour: us.LastHour, SentLastDay: us.LastDay,
		PerHour: lim.PerHour, PerDay: lim.PerDay,
		RemainingHour: us.RemainingHour, RemainingDay: us.RemainingDay,
		LimitsOverridden: u.Limits != nil,
	}
	if !us.NextSlot.IsZero() {
		v.NextSlot = &us.NextSlot
	}
	return v
}

func (a *api) listUsage(w http.ResponseWriter, r *http.Request) error {
	users, err := a.Users.List()
	if err != nil {
		return err
	}
	out := make([]UsageView, 0, len(users))
	for _, u := range users {
		out = append(out, a.usageOf(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) showUsage(w http.ResponseWriter, r *http.Request) error {
	u, err := a.Users.Get(r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.usageOf(u))
	return nil
}

// LimitsRequest is the body of PUT /api/users/{name}/limits.
type LimitsRequest struct {
	PerHour *int `json:"per_hour"`
	PerDay  *int `json:"per_day"`
}

// setLimits overrides a user's limits, within the operator's ceiling.
// A value left out keeps the user's current effective value.
func (a *api) setLimits(w http.ResponseWriter, r *http.Request) error {
	var req LimitsRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	var result quota.Limits
	err := a.Users.Update(name, func(u *auth.User) error {
		lim := a.LimitsFor(u)
		if req.PerHour != nil {
			lim.PerHour = *req.PerHour
		}
		if req.PerDay != nil {
			lim.PerDay = *req.PerDay
		}
		switch {
		case lim.PerHour < 0 || lim.PerDay < 0:
			return badRequest("limits must not be negative")
		case lim.PerDay > a.MaxPerDay:
			return badRequest("per_day %d exceeds the operator ceiling limits.max_per_day = %d", lim.PerDay, a.MaxPerDay)
		case lim.PerHour > a.MaxPerDay:
			return badRequest("per_hour %d exceeds the operator ceiling limits.max_per_day = %d", lim.PerHour, a.MaxPerDay)
		}
		u.Limits = &lim
		result = lim
		return nil
	})
	if err != nil {
		return err
	}
	a.Logger.Info("limits set", "user", name, "per_hour", result.PerHour, "per_day", result.PerDay)
	u, err := a.Users.Get(name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.usageOf(u))
	return nil
}

// clearLimits drops a user's override: back to its route's defaults.
func (a *api) clearLimits(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := a.Users.Update(name, func(u *auth.User) error { u.Limits = nil; return nil }); err != nil {
		return err
	}
	u, err := a.Users.Get(name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.usageOf(u))
	return nil
}
