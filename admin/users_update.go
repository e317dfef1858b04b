package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"outbound/auth"
	"outbound/smarthost"
	"outbound/spf"
)

// UserDetail is one user as GET /api/users/{name} shows it: what
// UserView shows (the same fields, at the top level), plus its sender
// settings, effective limits, current usage and, when it is routed through
// a smarthost, that smarthost with its password masked.
type UserDetail struct {
	UserView
	// DisplayName is put in From headers that have only an address; ""
	// when none.
	DisplayName string `json:"display_name"`
	// ReplyTo is added as Reply-To to messages without one; "" when none.
	ReplyTo string `json:"reply_to"`
	// SPFPolicy is the SPF policy in force for the user's mail ("off",
	// "warn", "enforce"); SPFPolicyOverridden says it is the user's own,
	// not its route's.
	SPFPolicy           string `json:"spf_policy"`
	SPFPolicyOverridden bool   `json:"spf_policy_overridden"`
	// DSN says whether the relay sends the user delivery status
	// notifications (bounces, delay warnings) by e-mail.
	DSN bool `json:"dsn"`
	// Limits are the limits in force: the user's own when Overridden,
	// else its route's defaults.
	Limits UserLimits `json:"limits"`
	// Usage is the user's sending, as GET /api/usage/{name} shows it.
	Usage UsageView `json:"usage"`
	// Smarthost is the user's smarthost; absent on the default route.
	Smarthost *UserSmarthost `json:"smarthost,omitempty"`
	// OwnSmarthost is the user's own SMTP server (PUT
	// /api/users/{name}/smarthost), whether or not the user is routed
	// through it now; absent when it has none.
	OwnSmarthost *UserSmarthost `json:"own_smarthost,omitempty"`
}

// UserLimits are a user's effective limits.
type UserLimits struct {
	PerHour int `json:"per_hour"`
	PerDay  int `json:"per_day"`
	// Overridden says the limits are the user's own (limits set), not its
	// route's defaults.
	Overridden bool `json:"overridden"`
}

// UserSmarthost is the smarthost a user is routed through, as far as the
// user's page needs it. The password is only ever masked.
type UserSmarthost struct {
	SmarthostSummary
	// Missing says the route names a smarthost that does not exist.
	Missing bool `json:"missing,omitempty"`
}

// UpdateUserRequest is the body of PATCH /api/users/{name}: a field left
// out (or null) is unchanged. "allow_from": [] clears the allowed senders;
// "display_name": "" and "reply_to": "" clear those settings;
// "spf_policy": "" puts the user back on its route's SPF policy.
// "dsn": false turns off the notifications (DSNs) the relay mails the
// user, for an app that learns its messages' fate from webhooks.
type UpdateUserRequest struct {
	AllowFrom   *[]string `json:"allow_from,omitempty"`
	DisplayName *string   `json:"display_name,omitempty"`
	ReplyTo     *string   `json:"reply_to,omitempty"`
	SPFPolicy   *string   `json:"spf_policy,omitempty"`
	DSN         *bool     `json:"dsn,omitempty"`
}

// userDetail builds the UserDetail of u.
func (a *api) userDetail(u *auth.User) (UserDetail, error) {
	p := a.Routes.Policy(u)
	d := UserDetail{
		UserView:            viewUser(u),
		DisplayName:         u.DisplayName,
		ReplyTo:             u.ReplyTo,
		Limits:              UserLimits{PerHour: p.Limits.PerHour, PerDay: p.Limits.PerDay, Overridden: p.LimitsOverridden},
		Usage:               a.usage(u, p),
		SPFPolicy:           string(p.SPFPolicy),
		SPFPolicyOverridden: p.SPFPolicyOverridden,
		DSN:                 !u.DSNOff,
	}
	if u.Route != "" && a.Smarthosts != nil {
		h, err := a.Smarthosts.Get(u.Route)
		switch {
		case errors.Is(err, smarthost.ErrNotFound):
			d.Smarthost = &UserSmarthost{SmarthostSummary: SmarthostSummary{Name: u.Route}, Missing: true}
		case err != nil:
			return d, err
		default:
			d.Smarthost = &UserSmarthost{SmarthostSummary: a.summary(h)}
		}
	}
	own, err := a.ownSmarthost(u.Name)
	if err != nil {
		return d, err
	}
	if own != nil {
		d.OwnSmarthost = &UserSmarthost{SmarthostSummary: a.summary(own)}
	}
	return d, nil
}

// writeUserDetail answers with u's detail, as GET and PATCH
// /api/users/{name} and DELETE /api/users/{name}/smarthost do: a user's
// page is shown one way.
func (a *api) writeUserDetail(w http.ResponseWriter, u *auth.User) error {
	d, err := a.userDetail(u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (a *api) showUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.Users.Get(r.PathValue("name"))
	if err != nil {
		return err
	}
	return a.writeUserDetail(w, u)
}

// validate checks the request and returns it normalized (white space
// around the settings trimmed); errors name the field and what to fix.
func (req UpdateUserRequest) validate() (UpdateUserRequest, error) {
	if req.AllowFrom == nil && req.DisplayName == nil && req.ReplyTo == nil && req.SPFPolicy == nil && req.DSN == nil {
		return req, badRequest(`nothing to update: give "allow_from" (a list of addresses and domains), "display_name", "reply_to", "spf_policy" or "dsn" (true or false)`)
	}
	if req.AllowFrom != nil {
		list := make([]string, 0, len(*req.AllowFrom))
		for i, s := range *req.AllowFrom {
			s = strings.TrimSpace(s)
			if err := auth.ValidateAllowFrom(s); err != nil {
				return req, badRequest("allow_from[%d]: %v ([] clears the list)", i, err)
			}
			list = append(list, s)
		}
		req.AllowFrom = &list
	}
	if req.DisplayName != nil {
		s := strings.TrimSpace(*req.DisplayName)
		if err := auth.ValidateDisplayName(s); err != nil {
			return req, badRequest(`display_name: %v ("" clears it)`, err)
		}
		req.DisplayName = &s
	}
	if req.ReplyTo != nil {
		s := strings.TrimSpace(*req.ReplyTo)
		if err := auth.ValidateReplyTo(s); err != nil {
			return req, badRequest(`reply_to: %v ("" clears it)`, err)
		}
		req.ReplyTo = &s
	}
	if req.SPFPolicy != nil && strings.TrimSpace(*req.SPFPolicy) != "" {
		p, err := spf.ParsePolicy(*req.SPFPolicy)
		if err != nil {
			return req, badRequest(`spf_policy: %v ("" follows the route's policy)`, err)
		}
		s := string(p)
		req.SPFPolicy = &s
	} else if req.SPFPolicy != nil {
		req.SPFPolicy = new(string)
	}
	return req, nil
}

// updateUser changes a user's allowed senders, sender settings and SPF
// policy override; what the request leaves out stays as it is. A sender
// acting on itself may change only its sender settings. The answer is
// the user's detail.
func (a *api) updateUser(w http.ResponseWriter, r *http.Request) error {
	var req UpdateUserRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	// A sender changes its own sender settings; what it may send as, and
	// how strictly its SPF is checked, are the operator's to decide.
	if s := actingSender(r); s != "" && req.AllowFrom != nil {
		return errSenderField(s, "allow_from")
	} else if s != "" && req.SPFPolicy != nil {
		return errSenderField(s, "spf_policy")
	}
	name := r.PathValue("name")
	if _, err := a.Users.Get(name); err != nil {
		return err // 404 for an unknown user before a 400 for its body
	}
	req, err := req.validate()
	if err != nil {
		return err
	}
	var changed []string
	err = a.Users.Update(name, func(u *auth.User) error {
		if req.AllowFrom != nil {
			u.AllowFrom = nil
			if len(*req.AllowFrom) > 0 {
				u.AllowFrom = *req.AllowFrom
			}
			changed = append(changed, "allow_from")
		}
		if req.DisplayName != nil {
			u.DisplayName = *req.DisplayName
			changed = append(changed, "display_name")
		}
		if req.ReplyTo != nil {
			u.ReplyTo = *req.ReplyTo
			changed = append(changed, "reply_to")
		}
		if req.SPFPolicy != nil {
			u.SPFPolicy = *req.SPFPolicy
			changed = append(changed, "spf_policy")
		}
		if req.DSN != nil {
			u.DSNOff = !*req.DSN
			changed = append(changed, "dsn")
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.Logger.Info("user updated", "user", name, "fields", strings.Join(changed, ","))
	u, err := a.Users.Get(name)
	if err != nil {
		return err
	}
	if err := a.writeUserDetail(w, u); err != nil {
		return fmt.Errorf("user %s updated, but showing it failed: %w", name, err)
	}
	return nil
}
