package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"outbound/admin"
	"outbound/queue"
)

func (e *cliEnv) queueCommand(args []string) error {
	return subcommands("queue", "queue needs a subcommand: list, show, stats, retry, flush, bounce, delete", args, map[string]func([]string) error{
		"list": e.queueList,
		"show": func(args []string) error {
			return showCommand(e, "queue show", "usage: outbound queue show ID [--json]", args, (*admin.Client).Message, showMessage)
		},
		"stats": func(args []string) error {
			return listCommand(e, "queue stats", args, (*admin.Client).QueueStats, printQueueStats)
		},
		"retry": func(args []string) error {
			return e.actOn(args, "usage: outbound queue retry ID", (*admin.Client).Retry, "%s will be retried now")
		},
		"bounce": func(args []string) error {
			return e.actOn(args, "usage: outbound queue bounce ID", (*admin.Client).Bounce, "%s bounced; the sender gets a notification")
		},
		"delete": func(args []string) error {
			return e.actOn(args, "usage: outbound queue delete ID", (*admin.Client).DeleteMessage, "%s deleted")
		},
		"flush": e.queueFlush,
	})
}

func (e *cliEnv) queueList(args []string) error {
	fs := newFlags("queue list")
	status := fs.String("status", "", "only messages with a recipient in this status: queued, delivered, failed")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	list := func(c *admin.Client) ([]*queue.Message, error) { return c.Messages(admin.QueueFilter{Status: *status}) }
	return fetch(e, *asJSON, list, printMessages)
}

// queueFlush makes pending messages due now, all of them or one route's.
func (e *cliEnv) queueFlush(args []string) error {
	fs := newFlags("queue flush")
	upstream := fs.String("upstream", "", "only messages for this route (\"default\" for the default route)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	flush := func(c *admin.Client) (*admin.FlushResult, error) { return c.FlushQueue(*upstream) }
	return fetch(e, *asJSON, flush, func(w io.Writer, res *admin.FlushResult) error {
		_, err := fmt.Fprintf(w, "%d pending messages will be retried now, spread out over a few moments\n", res.Flushed)
		return err
	})
}

func printMessages(w io.Writer, msgs []*queue.Message) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tCREATED\tUSER\tFROM\tRCPTS\tSTATUS\tNEXT ATTEMPT")
	for _, m := range msgs {
		next := "-"
		if !m.NextAttempt.IsZero() {
			next = m.NextAttempt.Local().Format(time.DateTime)
		}
		if m.Node != "" {
			// Another cluster node holds it: what it waits for is
			// known there (docs/cluster.md).
			next = "on node " + m.Node
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Created.Local().Format(time.DateTime),
			m.User, orNull(m.From), len(m.Recipients), statusSummary(m), next)
	}
	return tw.Flush()
}

func printQueueStats(w io.Writer, st *admin.QueueStats) error {
	fmt.Fprintf(w, "messages:     %d (%d pending, %d notifications pending, %d redacted)\n", st.Messages, st.Pending, st.Notifications, st.Redacted)
	fmt.Fprintf(w, "recipients:   %d queued, %d delivered, %d failed\n", st.Recipients["queued"], st.Recipients["delivered"], st.Recipients["failed"])
	if st.OldestPending != nil {
		fmt.Fprintf(w, "oldest pending: %s (%s ago)\n", st.OldestPending.Local().Format(time.DateTime), time.Since(*st.OldestPending).Round(time.Second))
	}
	return nil
}

func orNull(addr string) string {
	if addr == "" {
		return "<>"
	}
	return addr
}

// statusSummary counts recipients by status: "2 delivered, 1 queued".
func statusSummary(m *queue.Message) string {
	counts := map[queue.Status]int{}
	for _, r := range m.Recipients {
		counts[r.Status]++
	}
	var parts []string
	for _, s := range []queue.Status{queue.Delivered, queue.Queued, queue.Failed} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

func showMessage(w io.Writer, m *queue.Message) error {
	fmt.Fprintf(w, "ID:          %s\n", m.ID)
	fmt.Fprintf(w, "User:        %s\n", m.User)
	fmt.Fprintf(w, "From:        %s\n", orNull(m.From))
	fmt.Fprintf(w, "Message-ID:  %s\n", m.MessageID)
	fmt.Fprintf(w, "Size:        %d bytes\n", m.Size)
	route := m.Route
	if route == "" {
		route = "default"
	}
	fmt.Fprintf(w, "Route:       %s\n", route)
	fmt.Fprintf(w, "Created:     %s\n", m.Created.Local().Format(time.DateTime))
	if !m.NextAttempt.IsZero() {
		fmt.Fprintf(w, "Next try:    %s\n", m.NextAttempt.Local().Format(time.DateTime))
	}
	if !m.Finished.IsZero() {
		fmt.Fprintf(w, "Finished:    %s\n", m.Finished.Local().Format(time.DateTime))
	}
	if !m.Redacted.IsZero() {
		fmt.Fprintf(w, "Content:     REDACTED on %s (only this stub remains)\n", m.Redacted.Local().Format(time.DateTime))
	}
	fmt.Fprintln(w, "Recipients:")
	for _, r := range m.Recipients {
		fmt.Fprintf(w, "  %-9s %s (attempts %d)\n", r.Status, r.Addr, r.Attempts)
		if r.Reply != "" {
			fmt.Fprintf(w, "            %s\n", r.Reply)
		}
	}
	if len(m.Attempts) > 0 {
		fmt.Fprintln(w, "Attempts:")
		for _, a := range m.Attempts {
			fmt.Fprintf(w, "  %s via %s (%s): %s\n", a.At.Local().Format(time.DateTime), a.Upstream, a.Duration.Round(time.Millisecond), a.Result)
		}
	}
	return nil
}
