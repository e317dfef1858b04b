package main

import (
	"fmt"
	"io"
	"time"

	"outbound/admin"
	"outbound/suppression"
)

// suppressionCommand lists, adds and lifts suppressed recipients. "del
// ADDR" without --user lifts the address from every list: it is the
// command the relay's 550 5.1.1 refusal names.
func (e *cliEnv) suppressionCommand(args []string) error {
	return subcommands("suppression", "suppression needs a subcommand: list, add, del", args, map[string]func([]string) error{
		"list": e.suppressionList,
		"add":  e.suppressionAdd,
		"del":  e.suppressionDel,
	})
}

func (e *cliEnv) suppressionList(args []string) error {
	fs := newFlags("suppression list")
	user := fs.String("user", "", "only this user's list")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("usage: outbound suppression list [--user U] [--json]")
	}
	list := func(c *admin.Client) ([]suppression.Entry, error) { return c.Suppressions(*user) }
	return fetch(e, *asJSON, list, printSuppressions)
}

func (e *cliEnv) suppressionAdd(args []string) error {
	fs := newFlags("suppression add")
	user := fs.String("user", "", `whose list (required under [suppression] scope = "user")`)
	reason := fs.String("reason", "", "quoted to senders in the refusal")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound suppression add ADDR [--user U] [--reason R]")
	}
	add := func(c *admin.Client) (*suppression.Entry, error) {
		return c.AddSuppression(admin.SuppressionRequest{User: *user, Addr: pos[0], Reason: *reason})
	}
	return fetch(e, *asJSON, add, func(w io.Writer, en *suppression.Entry) error {
		_, err := fmt.Fprintf(w, "%s suppressed%s until %s\n", en.Addr, forUser(en.User), expiry(en))
		return err
	})
}

func (e *cliEnv) suppressionDel(args []string) error {
	fs := newFlags("suppression del")
	user := fs.String("user", "", "lift it on this user's list only (default: on every list)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound suppression del ADDR [--user U]")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	if err := c.DeleteSuppression(pos[0], *user); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is no longer suppressed%s\n", pos[0], forUser(*user))
	return nil
}

func forUser(user string) string {
	if user == "" {
		return ""
	}
	return " for " + user
}

func expiry(en *suppression.Entry) string {
	if en.Expires.IsZero() {
		return "never"
	}
	return en.Expires.Local().Format(time.DateOnly)
}

func printSuppressions(w io.Writer, list []suppression.Entry) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ADDRESS\tUSER\tKIND\tSINCE\tEXPIRES\tREASON")
	for _, en := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", en.Addr, dash(en.User), en.Kind,
			en.Created.Local().Format(time.DateOnly), expiry(&en), en.Reason)
	}
	return tw.Flush()
}
