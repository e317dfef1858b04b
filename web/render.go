package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"outbound/queue"
)

//go:embed templates static
var assets embed.FS

// views are the pages' templates by name ("overview" is
// templates/views/overview.html), each parsed once together with the
// layout and its partials.
type views map[string]*template.Template

// parseViews parses templates/layout.html (which defines "layout" and the
// small shared pieces) and templates/partials/*.html (shared blocks, such
// as the usage bars and chart) with each templates/views/*.html in turn. A
// view defines "title" and "content".
func parseViews() (views, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials/*.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(assets, "templates/views/*.html")
	if err != nil {
		return nil, err
	}
	v := views{}
	for _, f := range files {
		t, err := template.Must(base.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, err
		}
		v[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return v, nil
}

// funcs are the helpers templates may call.
var funcs = template.FuncMap{
	// when formats a time for people: UTC, to the minute.
	"when": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if t == nil || t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		}
		return fmt.Sprint(t)
	},
	// short formats a time for a list, compared with now (both in UTC):
	// the time alone today, the day and time this year, else the date.
	// The list's cell carries the full time (when) as its title.
	"short": shortTime,
	// iso is a time for a <time datetime> attribute.
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	// took formats how long something took, to the millisecond.
	"took": func(d time.Duration) string {
		if d < time.Millisecond {
			return "<1ms"
		}
		return d.Round(time.Millisecond).String()
	},
	// bytes formats a size.
	"bytes": func(n int) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d bytes", n)
	},
	"sub": func(a, b int) int { return a - b },
	// messageState is a message's state in one word, for its badge.
	"messageState": messageState,
	// dsnClass reads an RFC 3463 status: 2.x.x delivered, 4.x.x a
	// temporary failure, 5.x.x a permanent one.
	"dsnClass": func(status string) string {
		switch {
		case strings.HasPrefix(status, "2."):
			return "delivered"
		case strings.HasPrefix(status, "4."):
			return "temporary"
		case strings.HasPrefix(status, "5."):
			return "permanent"
		}
		return ""
	},
	// percentStep is used/limit in steps of 10 (0..10), for the usage
	// bars' classes (bar-0 .. bar-10): the CSP forbids style attributes.
	"percentStep": func(used, limit int) int {
		if limit <= 0 {
			return 10
		}
		step := (used*10 + limit - 1) / limit
		return min(max(step, 0), 10)
	},
}

// shortTime is t for a list of messages, as short as is clear next to
// now: "15:04" on the same day, "Jan 2, 15:04" in the same year, else
// "2006-01-02". A message list is read for what came in lately.
func shortTime(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t, now = t.UTC(), now.UTC()
	switch {
	case t.Year() == now.Year() && t.YearDay() == now.YearDay():
		return t.Format("15:04")
	case t.Year() == now.Year():
		return t.Format("Jan 2, 15:04")
	}
	return t.Format("2006-01-02")
}

// messageState is "queued" while any recipient waits, else "delivered",
// "failed", or "partly failed" when some recipients were delivered and
// some failed.
func messageState(m *queue.Message) string {
	if m.Pending() {
		return "queued"
	}
	var delivered, failed bool
	for _, r := range m.Recipients {
		delivered = delivered || r.Status == queue.Delivered
		failed = failed || r.Status == queue.Failed
	}
	switch {
	case delivered && failed:
		return "partly failed"
	case failed:
		return "failed"
	}
	return "delivered"
}

// Page is what every view gets: the signed-in actor (nil on the sign-in
// page), the CSRF token for its forms, the flash of the last action, the
// navigation entry to mark, and the page's own data.
type Page struct {
	Actor *Session
	CSRF  string
	Flash *Flash
	// Nav is the navigation entry of this page: "overview", "users",
	// "smarthosts", "queue", "suppressions", "settings", "messages".
	Nav  string
	Data any
}

// page renders view with data for the request's actor, with status 200.
func (h *handler) page(w http.ResponseWriter, r *http.Request, view, nav string, data any) {
	h.render(w, r, http.StatusOK, view, nav, data)
}

// render renders view with status. It renders into a buffer first, so a
// template error is a clean 500 rather than half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, view, nav string, data any) {
	t, ok := h.views[view]
	if !ok {
		h.Logger.Error("no such view", "view", view)
		http.Error(w, "internal error: no view "+view, http.StatusInternalServerError)
		return
	}
	p := Page{Actor: currentActor(r), Nav: nav, Data: data}
	if p.Actor != nil {
		p.CSRF, p.Flash = p.Actor.CSRF, p.Actor.Flash
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		h.Logger.Error("rendering page", "view", view, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// ErrorPage is the data of the error view.
type ErrorPage struct {
	Status  int
	Title   string
	Message string
}

// fail answers with the error page: status and a message that says what
// happened and what to do, in a role="alert" box.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", "", ErrorPage{Status: status, Title: http.StatusText(status), Message: msg})
}

// notFound is the 404 page, also what a sender sees for anything not its own.
func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, http.StatusNotFound, "There is no such page, or it is not yours to see.")
}

// redirect ends an action: a 303 to target (so reloading does not repeat
// the POST), with flash shown once on the page there.
func (h *handler) redirect(w http.ResponseWriter, r *http.Request, target string, flash *Flash) {
	if a := currentActor(r); a != nil && flash != nil {
		h.Sessions.Touch(a.ID, h.Now(), flash)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// ok and failed are the two kinds of flash.
func ok(format string, args ...any) *Flash {
	return &Flash{Kind: "ok", Text: fmt.Sprintf(format, args...)}
}

func failed(format string, args ...any) *Flash {
	return &Flash{Kind: "error", Text: fmt.Sprintf(format, args...)}
}

// staticFiles serves the embedded assets. They change only with the
// binary, so browsers may keep them for an hour.
func staticFiles(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// apiRefused ends an action the API refused: a 404 is the not-found page;
// any other refusal goes back to the page at back with the API's own
// message as an error flash (the same words the CLI prints); a failure of
// the server itself is an error page.
func (h *handler) apiRefused(w http.ResponseWriter, r *http.Request, back string, err error) {
	switch st := apiStatus(err); {
	case st == http.StatusNotFound || st < 400 || st >= 500:
		h.apiFail(w, r, err)
	default:
		h.redirect(w, r, back, failed("%s", err.Error()))
	}
}
