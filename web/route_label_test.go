package web

import (
	"net/http"
	"testing"
	"time"

	"outbound/queue"
	"outbound/smarthost"
)

// A user's own SMTP server is a smarthost with an internal name ("own-"
// and the login): no page shows that name. The Queue, Messages and a
// message's page say Own SMTP server and lead to the owner's page; the
// Smarthosts page lists own servers apart, by owner; the SPF section
// names the server as its owner knows it.
func TestOwnSMTPServerIsNamedForPeople(t *testing.T) {
	r := newRig(t, rigOptions{spf: fakeSPF(t)})
	if _, err := r.users.Add("alice@example.com", senderPassword, []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	r.addSmarthost(t, "mailgun-eu")
	op := r.signedIn(t, operatorName)
	if res := op.submit("/users/alice@example.com", "/users/alice@example.com/email", emailForm(startUpstream(t), upPassword)); res.status != http.StatusSeeOther {
		t.Fatalf("saving alice's own SMTP server: %d\n%s", res.status, res.body)
	}
	own := r.routeOf(t, "alice@example.com")
	if own == "" || own == "mailgun-eu" {
		t.Fatalf("alice is routed through %q", own)
	}
	// Its SPF identity, as an operator may give one.
	if err := r.hosts.Update(own, nil, func(h *smarthost.Smarthost) error { h.SPFInclude = "_spf.example.net"; return nil }); err != nil {
		t.Fatal(err)
	}
	m := &queue.Message{User: "alice@example.com", From: "alice@example.com", Route: own,
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.Queued}}}
	if err := r.queue.Add(m, []byte("Subject: hello\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	m.RecordAttempt(queue.Attempt{At: time.Now(), Upstream: own, Result: "451 4.3.0 try later"})
	if err := r.queue.Update(m); err != nil {
		t.Fatal(err)
	}
	shared := &queue.Message{User: "alice@example.com", From: "alice@example.com", Route: "mailgun-eu",
		Recipients: []queue.Recipient{{Addr: "carol@example.net", Status: queue.Queued}}}
	if err := r.queue.Add(shared, []byte("Subject: hello\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}

	// An operator's pages.
	wantIn(t, "/queue", op.get("/queue"), `<a href="/users/alice@example.com">Own SMTP server</a>`,
		`<a href="/smarthosts/mailgun-eu">mailgun-eu</a>`)
	wantIn(t, "the message's page", op.get("/queue/"+m.ID),
		`Route</dt><dd>Own SMTP server of <a href="/users/alice@example.com">alice@example.com</a></dd>`,
		`· Own SMTP server of <a href="/users/alice@example.com">alice@example.com</a>`)
	hosts := op.get("/smarthosts")
	wantIn(t, "/smarthosts", hosts, "Users' own SMTP servers", `<a class="addr-fit" href="/users/alice@example.com">alice@example.com</a>`,
		`href="/smarthosts/mailgun-eu"`)
	wantNotIn(t, "/smarthosts", hosts, `href="/smarthosts/`+own+`"`)
	spfPage := op.get("/users/alice@example.com/spf")
	wantIn(t, "the SPF page", spfPage, "Mail leaves through <strong>alice@example.com&#39;s own SMTP server</strong>",
		"does not authorize alice@example.com&#39;s own SMTP server; add include:_spf.example.net")
	for path, page := range map[string]response{"/queue": op.get("/queue"), "/queue/" + m.ID: op.get("/queue/" + m.ID),
		"/smarthosts": hosts, "/users/alice@example.com/spf": spfPage, "/users": op.get("/users")} {
		wantNotIn(t, path, page, ">"+own, " "+own)
	}

	// The sender's: its own server leads to its E-mail settings; a shared
	// smarthost is named, not linked (it has no page for senders).
	alice := r.signedIn(t, "alice@example.com")
	for _, path := range []string{"/", "/messages"} {
		page := alice.get(path)
		wantIn(t, path, page, `<a href="/users/alice@example.com">Own SMTP server</a>`, `title="mailgun-eu">mailgun-eu</span>`)
		wantNotIn(t, path, page, ">"+own, `href="/smarthosts/`)
	}
	page := alice.get("/queue/" + m.ID)
	wantIn(t, "the sender's message page", page, `Route</dt><dd><a href="/users/alice@example.com">Your own SMTP server</a></dd>`)
	wantNotIn(t, "the sender's message page", page, ">"+own, " "+own)
}

func TestShortTime(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 3, 2, 9, 5, 0, 0, time.UTC), "09:05"},
		{time.Date(2026, 3, 2, 11, 5, 0, 0, time.FixedZone("CET", 3600)), "10:05"}, // in UTC
		{time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC), "Mar 1, 23:59"},
		{time.Date(2025, 3, 2, 9, 5, 0, 0, time.UTC), "2025-03-02"},
		{time.Time{}, "—"},
	} {
		if got := shortTime(c.t, now); got != c.want {
			t.Errorf("shortTime(%v) = %q, want %q", c.t, got, c.want)
		}
	}
}
