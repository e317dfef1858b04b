package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"outbound/admin"
	"outbound/auth"
)

func (e *cliEnv) userCommand(args []string) error {
	del := func(args []string) error {
		return e.actOn(args, "usage: outbound user del NAME", (*admin.Client).DeleteUser, "deleted user %s")
	}
	return subcommands("user", "user needs a subcommand: add, list, show, set, del, passwd, route", args, map[string]func([]string) error{
		"add": e.userAdd,
		"list": func(args []string) error {
			return listCommand(e, "user list", args, (*admin.Client).Users, printUsers)
		},
		"show": func(args []string) error {
			return showCommand(e, "user show", "usage: outbound user show USER [--json]", args, (*admin.Client).User, showUser)
		},
		"set":    e.userSet,
		"route":  e.userRoute,
		"del":    del,
		"delete": del,
		"passwd": e.userPasswd,
	})
}

// userPasswd sets a user's password, read from stdin or a prompt.
func (e *cliEnv) userPasswd(args []string) error {
	if len(args) != 1 {
		return usagef("usage: outbound user passwd NAME")
	}
	password, err := e.readPassword("New password for " + args[0])
	if err != nil {
		return err
	}
	setPassword := func(c *admin.Client, name string) error { return c.SetPassword(name, password) }
	return e.actOn(args, "usage: outbound user passwd NAME", setPassword, "password changed for %s")
}

// addedUser is what `user add --json` prints: the user, and the generated
// password if any (the one copy of it there will ever be).
type addedUser struct {
	admin.UserView
	Password string `json:"password,omitempty"`
}

func (e *cliEnv) userAdd(args []string) error {
	fs := newFlags("user add")
	var allow stringList
	fs.Var(&allow, "allow-from", "address or domain the user may send as (repeatable)")
	generate := fs.Bool("generate-password", false, "generate a password and print it")
	asJSON := fs.Bool("json", false, "print JSON (the user, and the generated password if any)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound user add NAME [--allow-from ADDR_OR_DOMAIN]... [--generate-password] [--json]")
	}
	var password string
	if *generate {
		password = auth.GeneratePassword()
	} else if password, err = e.readPassword("Password for " + pos[0]); err != nil {
		return err
	}
	add := func(c *admin.Client) (addedUser, error) {
		u, err := c.CreateUser(admin.CreateUserRequest{Name: pos[0], Password: password, AllowFrom: allow})
		if err != nil {
			return addedUser{}, err
		}
		out := addedUser{UserView: *u}
		if *generate {
			out.Password = password
		}
		return out, nil
	}
	return fetch(e, *asJSON, add, func(w io.Writer, u addedUser) error {
		fmt.Fprintf(w, "added user %s\n", u.Name)
		if u.Password != "" {
			fmt.Fprintf(w, "password: %s\n", u.Password)
		}
		return nil
	})
}

func printUsers(w io.Writer, users []admin.UserView) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "USER\tROUTE\tALLOWED SENDERS\tCREATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Route, dash(strings.Join(u.AllowFrom, ",")), u.Created.Format("2006-01-02"))
	}
	return tw.Flush()
}

const userSetUsage = `usage: outbound user set USER [--allow-from ADDR_OR_DOMAIN]... [--clear-allow-from] [--display-name NAME] [--reply-to ADDR] [--spf-policy off|warn|enforce|route] [--dsn on|off] (at least one; "" clears a setting)`

// userSet changes a user's allowed senders and sender settings (PATCH
// /api/users/{name}): only the options given change. --allow-from replaces
// the whole list; --clear-allow-from empties it.
func (e *cliEnv) userSet(args []string) error {
	fs := newFlags("user set")
	var allow stringList
	fs.Var(&allow, "allow-from", "address or domain the user may send as (repeatable; replaces the list)")
	clearAllow := fs.Bool("clear-allow-from", false, "remove every allowed sender")
	displayName := fs.String("display-name", "", "display name put in From headers that have only an address (\"\" clears)")
	replyTo := fs.String("reply-to", "", "Reply-To added to messages without one (\"\" clears)")
	spfPolicy := fs.String("spf-policy", "", "the user's own SPF policy: off, warn or enforce; \"route\" (or \"\") follows its route's")
	dsn := fs.String("dsn", "", "notifications (DSNs) mailed to the user's senders: on, or off for an app that reads webhooks")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	set := given(fs)
	if len(pos) != 1 || !(set["allow-from"] || *clearAllow || set["display-name"] || set["reply-to"] || set["spf-policy"] || set["dsn"]) {
		return usagef(userSetUsage)
	}
	var req admin.UpdateUserRequest
	switch {
	case set["allow-from"] && *clearAllow:
		return usagef("give --allow-from (the new list) or --clear-allow-from, not both")
	case set["allow-from"]:
		for _, a := range allow {
			if strings.TrimSpace(a) == "" {
				return usagef(`--allow-from "" is not a sender: use --clear-allow-from to remove every allowed sender`)
			}
		}
		list := []string(allow)
		req.AllowFrom = &list
	case *clearAllow:
		req.AllowFrom = &[]string{}
	}
	if set["display-name"] {
		req.DisplayName = displayName
	}
	if set["reply-to"] {
		req.ReplyTo = replyTo
	}
	if set["spf-policy"] {
		if *spfPolicy == "route" {
			*spfPolicy = ""
		}
		req.SPFPolicy = spfPolicy
	}
	if set["dsn"] {
		on := *dsn == "on"
		if !on && *dsn != "off" {
			return usagef("--dsn %q: give on or off", *dsn)
		}
		req.DSN = &on
	}
	update := func(c *admin.Client) (*admin.UserDetail, error) { return c.UpdateUser(pos[0], req) }
	return fetch(e, *asJSON, update, func(w io.Writer, d *admin.UserDetail) error {
		fmt.Fprintf(w, "updated user %s\n", d.Name)
		printSenderSettings(w, d)
		return nil
	})
}

// showUser prints one user: route, limits, sender settings, usage and its
// smarthost (the password masked by the server).
func showUser(w io.Writer, d *admin.UserDetail) error {
	fmt.Fprintf(w, "User:            %s\n", d.Name)
	fmt.Fprintf(w, "Created:         %s\n", d.Created.Local().Format(time.DateTime))
	route := d.Route
	if d.Route == "default" {
		route = "default (the relay's default route)"
	}
	fmt.Fprintf(w, "Route:           %s\n", route)
	printSenderSettings(w, d)
	own := "the route's defaults"
	if d.Limits.Overridden {
		own = "own limits"
	}
	fmt.Fprintf(w, "Limits:          %d per hour, %d per day (%s)\n", d.Limits.PerHour, d.Limits.PerDay, own)
	u := d.Usage
	fmt.Fprintf(w, "Sent:            %d in the last hour, %d in the last day\n", u.SentLastHour, u.SentLastDay)
	fmt.Fprintf(w, "Remaining:       %d this hour, %d today\n", u.RemainingHour, u.RemainingDay)
	if u.NextSlot != nil {
		fmt.Fprintf(w, "Next slot:       in %s (%s)\n", time.Until(*u.NextSlot).Round(time.Second), u.NextSlot.Local().Format(time.DateTime))
	}
	if h := d.Smarthost; h != nil {
		if h.Missing {
			fmt.Fprintf(w, "Smarthost:       %s does not exist (route the user elsewhere: outbound user route %s --smarthost NAME | --default)\n", h.Name, d.Name)
			return nil
		}
		fmt.Fprintf(w, "Smarthost:       %s (%s:%d, %s)\n", h.Name, h.Host, h.Port, h.TLS)
		fmt.Fprintf(w, "  Username:      %s\n", dash(h.Username))
		fmt.Fprintf(w, "  Password:      %s\n", dash(h.Password))
	}
	return nil
}

// printSenderSettings prints who the user may send as, and the display
// name and Reply-To the relay fills in.
func printSenderSettings(w io.Writer, d *admin.UserDetail) {
	senders := append([]string(nil), d.AllowFrom...)
	if at := strings.LastIndexByte(d.Name, '@'); at > 0 && at < len(d.Name)-1 {
		senders = append([]string{d.Name + " (its login)"}, senders...)
	}
	fmt.Fprintf(w, "Allowed From:    %s\n", dash(strings.Join(senders, ", ")))
	fmt.Fprintf(w, "Display name:    %s\n", dash(d.DisplayName))
	fmt.Fprintf(w, "Reply-To:        %s\n", dash(d.ReplyTo))
	whose := "the route's"
	if d.SPFPolicyOverridden {
		whose = "own"
	}
	fmt.Fprintf(w, "SPF policy:      %s (%s)\n", dash(d.SPFPolicy), whose)
	dsn := "by e-mail (DSNs to the sender)"
	if !d.DSN {
		dsn = "off (no DSN e-mails)"
	}
	fmt.Fprintf(w, "Notifications:   %s\n", dsn)
}

const userRouteUsage = "usage: outbound user route USER... --smarthost NAME | outbound user route --from NAME --smarthost OTHER | outbound user route USER... --default"

// userRoute moves users to a smarthost or back to the default route, all
// of them in one transaction.
func (e *cliEnv) userRoute(args []string) error {
	fs := newFlags("user route")
	to := fs.String("smarthost", "", "the smarthost to route the users through")
	from := fs.String("from", "", "move every user of this smarthost (\"default\": of the default route)")
	def := fs.Bool("default", false, "back to the default route")
	asJSON := fs.Bool("json", false, "print JSON")
	users, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if (len(users) > 0) == (*from != "") || (*to != "") == *def {
		return usagef(userRouteUsage)
	}
	route := func(c *admin.Client) (*admin.RouteResult, error) {
		return c.SetRoutes(admin.RouteRequest{Users: users, From: *from, Smarthost: *to, Default: *def})
	}
	return fetch(e, *asJSON, route, func(w io.Writer, res *admin.RouteResult) error {
		if len(res.Users) == 0 {
			fmt.Fprintf(w, "no users on %s; nothing moved\n", *from)
			return nil
		}
		for _, u := range res.Users {
			fmt.Fprintf(w, "%s now on route %s (limits %d per hour, %d per day)\n", u.User, res.Route, u.PerHour, u.PerDay)
		}
		return nil
	})
}
