package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"outbound/admin"
	"outbound/events"
)

// eventsCommand prints the event log, page after page, and with --follow
// keeps polling for newer events (every second, from the last one seen)
// until interrupted.
func (e *cliEnv) eventsCommand(args []string) error {
	fs := newFlags("events")
	user := fs.String("user", "", "only this user's messages' events")
	since := fs.String("since", "", "only events from this time on: RFC 3339, a date (2006-01-02), or a duration ago (1h)")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	asJSON := fs.Bool("json", false, "print each event as one line of JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("usage: outbound events [--user U] [--since T] [--follow] [--json]")
	}
	f := admin.EventFilter{User: *user}
	if *since != "" {
		if f.Since, err = parseSince(*since, time.Now()); err != nil {
			return usagef("events --since: %v", err)
		}
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	emit := func(ev events.Event) error { return printEvent(e.stdout, ev, *asJSON) }
	if !*follow {
		_, err := pageEvents(c, f, emit)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return followEvents(ctx, c, f, time.Second, emit)
}

// pageEvents prints every event f selects, page after page, and returns
// the filter that continues after the last one.
func pageEvents(c *admin.Client, f admin.EventFilter, emit func(events.Event) error) (admin.EventFilter, error) {
	for {
		p, err := c.Events(f)
		if err != nil {
			return f, err
		}
		for _, ev := range p.Events {
			if err := emit(ev); err != nil {
				return f, err
			}
		}
		if p.NextCursor != "" {
			f.Cursor = p.NextCursor
		}
		if !p.More {
			return f, nil
		}
	}
}

// followEvents prints the events f selects, then polls every interval
// for newer ones from the last cursor, until ctx ends.
func followEvents(ctx context.Context, c *admin.Client, f admin.EventFilter, every time.Duration, emit func(events.Event) error) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var err error
		if f, err = pageEvents(c, f, emit); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// parseSince reads --since: a time in RFC 3339 form, a date (midnight,
// local time), or a duration meaning that long before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2006-01-02T15:04:05Z), a date (2006-01-02) or a duration (90m, 24h)", s)
}

// printEvent prints one event on one line: JSON, or for people the time,
// kind, message, recipient and what the upstream said.
func printEvent(w io.Writer, ev events.Event, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	what := ev.Reply
	if ev.Detail != "" {
		what = joinNonEmpty(what, ev.Detail)
	}
	if ev.Upstream != "" {
		what = joinNonEmpty("via "+ev.Upstream, what)
	}
	_, err := fmt.Fprintf(w, "%s  %-19s  %s  %s  %s  %s\n", ev.At.Local().Format(time.DateTime), ev.Kind,
		ev.Message, dash(ev.User), dash(ev.Recipient), dash(what))
	return err
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}
