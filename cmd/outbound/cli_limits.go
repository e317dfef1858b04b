package main

import (
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"outbound/admin"
)

func (e *cliEnv) usageCommand(args []string) error {
	fs := newFlags("usage")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("usage: outbound usage [USER]")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	var list []admin.UsageView
	if len(pos) == 1 {
		var one admin.UsageView
		if err := c.call("GET", "/api/usage/"+url.PathEscape(pos[0]), nil, &one); err != nil {
			return err
		}
		list = append(list, one)
	} else if err := c.call("GET", "/api/usage", nil, &list); err != nil {
		return err
	}
	if *asJSON {
		if len(pos) == 1 {
			return printJSON(e.stdout, list[0])
		}
		return printJSON(e.stdout, list)
	}
	printUsage(e, list)
	return nil
}

func printUsage(e *cliEnv, list []admin.UsageView) {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
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
	tw.Flush()
}

func (e *cliEnv) limitsCommand(args []string) error {
	if len(args) == 0 {
		return usagef("usage: outbound limits set USER [--per-hour N] [--per-day N] | outbound limits reset USER")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "set":
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
		c, err := e.client()
		if err != nil {
			return err
		}
		var u admin.UsageView
		if err := c.call("PUT", "/api/users/"+url.PathEscape(pos[0])+"/limits", req, &u); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, u)
		}
		fmt.Fprintf(e.stdout, "limits for %s: %d per hour, %d per day\n", u.User, u.PerHour, u.PerDay)
		return nil
	case "reset":
		if len(args) != 1 {
			return usagef("usage: outbound limits reset USER")
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		var u admin.UsageView
		if err := c.call("DELETE", "/api/users/"+url.PathEscape(args[0])+"/limits", nil, &u); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "limits for %s back to its route's defaults: %d per hour, %d per day\n", u.User, u.PerHour, u.PerDay)
		return nil
	}
	return usagef("unknown limits subcommand %q", sub)
}
