package web

import (
	"net/http"
	"strconv"
	"strings"

	"outbound/admin"
)

// userLimitsSave is POST /users/{name}/limits (operators): the user's own
// Per hour and Per day limits, within the operator's ceiling.
func (h *handler) userLimitsSave(w http.ResponseWriter, r *http.Request) {
	f := LimitsForm{PerHour: strings.TrimSpace(r.PostFormValue("per_hour")), PerDay: strings.TrimSpace(r.PostFormValue("per_day"))}
	perHour, err1 := strconv.Atoi(f.PerHour)
	perDay, err2 := strconv.Atoi(f.PerDay)
	var err error
	if err1 != nil || err2 != nil {
		err = &admin.Error{Status: http.StatusBadRequest, Message: "Per hour and Per day must be whole numbers of recipients."}
	} else {
		_, err = h.api(r).SetLimits(r.PathValue("name"), admin.LimitsRequest{PerHour: &perHour, PerDay: &perDay})
	}
	if err != nil {
		h.userRefused(w, r, err, func(p *UserPage) {
			f.Error = err.Error()
			p.Limits = f
		})
		return
	}
	h.redirect(w, r, "/users/"+pathName(r.PathValue("name")), ok("Limits saved: %d per hour, %d per day.", perHour, perDay))
}

// userLimitsReset is POST /users/{name}/limits/reset, Reset to default:
// the user's route's limits again.
func (h *handler) userLimitsReset(w http.ResponseWriter, r *http.Request) {
	u, err := h.api(r).ClearLimits(r.PathValue("name"))
	if err != nil {
		h.userRefused(w, r, err, func(p *UserPage) { p.Limits.Error = err.Error() })
		return
	}
	h.redirect(w, r, "/users/"+pathName(u.User), ok("Limits reset to the route's default: %d per hour, %d per day.", u.PerHour, u.PerDay))
}
