package admin

import (
	"net/http"
	"time"

	"outbound/auth"
	"outbound/quota"
	"outbound/route"
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
	// Hourly counts the recipients of each of the last 24 hours, oldest
	// first, for a chart of the day: the last one is SentLastHour, all of
	// them SentLastDay.
	Hourly []int `json:"hourly"`
}

func (a *api) usageOf(u *auth.User) UsageView {
	return a.usage(u, a.Routes.Policy(u))
}

// usage is u's UsageView under its policy p.
func (a *api) usage(u *auth.User, p route.Policy) UsageView {
	us := a.Quota.Usage(u.Name, p.Limits)
	v := UsageView{
		User: u.Name, SentLastHour: us.LastHour, SentLastDay: us.LastDay,
		PerHour: p.Limits.PerHour, PerDay: p.Limits.PerDay,
		RemainingHour: us.RemainingHour, RemainingDay: us.RemainingDay,
		LimitsOverridden: p.LimitsOverridden,
	}
	if !us.NextSlot.IsZero() {
		v.NextSlot = &us.NextSlot
	}
	hourly := a.Quota.Hourly(u.Name)
	v.Hourly = hourly[:]
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

// setLimits overrides a user's limits, within the operator's ceiling
// (route.Router.CheckLimits). A value left out keeps the user's current
// effective value.
func (a *api) setLimits(w http.ResponseWriter, r *http.Request) error {
	var req LimitsRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	var result quota.Limits
	err := a.Users.Update(name, func(u *auth.User) error {
		lim := a.Routes.Policy(u).Limits
		if req.PerHour != nil {
			lim.PerHour = *req.PerHour
		}
		if req.PerDay != nil {
			lim.PerDay = *req.PerDay
		}
		if err := a.Routes.CheckLimits(lim); err != nil {
			return badRequest("%v", err)
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
