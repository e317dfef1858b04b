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
