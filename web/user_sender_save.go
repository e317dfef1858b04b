package web

import (
	"net/http"
	"strings"

	"outbound/admin"
)

// userSenderSave is POST /users/{name}/sender: Display name, Reply-To and
// whether to send delivery notifications by e-mail (an unticked checkbox
// sends nothing, so its absence means off), and for an operator Allowed From (what a sender may send as is the
// operator's to decide; the API refuses it from a sender too).
func (h *handler) userSenderSave(w http.ResponseWriter, r *http.Request) {
	f := SenderForm{DisplayName: strings.TrimSpace(r.PostFormValue("display_name")),
		ReplyTo: strings.TrimSpace(r.PostFormValue("reply_to")), AllowFrom: r.PostFormValue("allow_from"),
		DSN: r.PostFormValue("dsn") != ""}
	req := admin.UpdateUserRequest{DisplayName: &f.DisplayName, ReplyTo: &f.ReplyTo, DSN: &f.DSN}
	if currentActor(r).Operator() {
		list := splitList(f.AllowFrom)
		req.AllowFrom = &list
	}
	d, err := h.api(r).UpdateUser(r.PathValue("name"), req)
	if err != nil {
		h.userRefused(w, r, err, func(p *UserPage) {
			if !p.Operator {
				f.AllowFrom = p.Sender.AllowFrom
			}
			f.Error = err.Error()
			p.Sender = f
		})
		return
	}
	h.redirect(w, r, "/users/"+pathName(d.Name), ok("Sender settings saved."))
}

// userRefused draws the user page again with the API's refusal of one
// section's form, which change puts in place.
func (h *handler) userRefused(w http.ResponseWriter, r *http.Request, err error, change func(*UserPage)) {
	status := apiStatus(err)
	if status == http.StatusNotFound || status < 400 || status >= 500 {
		h.apiFail(w, r, err)
		return
	}
	p, perr := h.userPage(r)
	if perr != nil {
		h.apiFail(w, r, perr)
		return
	}
	change(p)
	h.showUser(w, r, status, p)
}
