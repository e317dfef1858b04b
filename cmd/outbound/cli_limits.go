package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"outbound/admin"
)

// usageCommand prints every user's sending and limits, or one user's.
func (e *cliEnv) usageCommand(args []string) error {
	fs := newFlags("usage")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
		return fetch(e, *asJSON, (*admin.Client).Usage, printUsage)
	case 1:
		one := func(c *admin.Client) (*admin.UsageView, error) { return c.UserUsage(pos[0]) }
		return fetch(e, *asJSON, one, func(w io.Writer, u *admin.UsageView) error {
			return printUsage(w, []admin.UsageView{*u})
		})
	}
	return usagef("usage: outbound usage [USER]")
}

func printUsage(w io.Writer, list []admin.UsageView) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tLAST HOUR\tLAST DAY\tREMAINING (HOUR/DAY)\tNEXT SLOT")
	for _, u := range list {
		next := "-"
		if u.NextSlot != nil {
			next = "in " + time.Until(*u.NextSlot).Round(time.Second).String()
		}
		limits := ""
		if u.LimitsOverridden {
			limits = " (own limits)"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\t%d/%d%s\t%s\n", u.User, u.SentLastHour, u.PerHour,
			u.SentLastDay, u.PerDay, u.RemainingHour, u.RemainingDay, limits, next)
	}
	return tw.Flush()
}

func (e *cliEnv) limitsCommand(args []string) error {
	return subcommands("limits", "usage: outbound limits set USER [--per-hour N] [--per-day N] | outbound limits reset USER", args, map[string]func([]string) error{
		"set":   e.limitsSet,
		"reset": e.limitsReset,
	})
}

// limitsReset puts a user back on its route's limits.
func (e *cliEnv) limitsReset(args []string) error {
	if len(args) != 1 {
		return usagef("usage: outbound limits reset USER")
	}
	reset := func(c *admin.Client) (*admin.UsageView, error) { return c.ClearLimits(args[0]) }
	return fetch(e, false, reset, func(w io.Writer, u *admin.UsageView) error {
		_, err := fmt.Fprintf(w, "limits for %s back to its route's defaults: %d per hour, %d per day\n", u.User, u.PerHour, u.PerDay)
		return err
	})
}

// limitsSet overrides a user's limits; a limit not given keeps its
// current value.
func (e *cliEnv) limitsSet(args []string) error {
	fs := newFlags("limits set")
	perHour := fs.String("per-hour", "", "recipients per hour")
	perDay := fs.String("per-day", "", "recipients per day")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (*perHour == "" && *perDay == "") {
		return usagef("usage: outbound limits set USER [--per-hour N] [--per-day N] (at least one)")
	}
	var req admin.LimitsRequest
	for _, f := range []struct {
		flag, val string
		dst       **int
	}{{"--per-hour", *perHour, &req.PerHour}, {"--per-day", *perDay, &req.PerDay}} {
		if f.val == "" {
			continue
		}
		n, err := strconv.Atoi(f.val)
		if err != nil {
			return usagef("%s must be a whole number, got %q", f.flag, f.val)
		}
		*f.dst = &n
	}
	set := func(c *admin.Client) (*admin.UsageView, error) { return c.SetLimits(pos[0], req) }
	return fetch(e, *asJSON, set, func(w io.Writer, u *admin.UsageView) error {
		_, err := fmt.Fprintf(w, "limits for %s: %d per hour, %d per day\n", u.User, u.PerHour, u.PerDay)
		return err
	})
}
