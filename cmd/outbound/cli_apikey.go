package main

import (
	"fmt"
	"io"
	"time"

	"outbound/admin"
	"outbound/auth"
)

// apikeyCommand manages a user's keys for the HTTP send API
// (docs/send-api.md). A key is printed once, when created; the relay keeps
// only its hash.
func (e *cliEnv) apikeyCommand(args []string) error {
	return subcommands("apikey", "apikey needs a subcommand: create, list, revoke", args, map[string]func([]string) error{
		"create": e.apikeyCreate,
		"list":   e.apikeyList,
		"revoke": e.apikeyRevoke,
	})
}

func (e *cliEnv) apikeyCreate(args []string) error {
	fs := newFlags("apikey create")
	name := fs.String("name", "", "a label for the key (\"billing app\")")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound apikey create USER [--name NAME]")
	}
	create := func(c *admin.Client) (*admin.APIKeyCreated, error) { return c.CreateAPIKey(pos[0], *name) }
	return fetch(e, *asJSON, create, func(w io.Writer, cr *admin.APIKeyCreated) error {
		_, err := fmt.Fprintf(w, "API key %s created for %s (shown only now; store it as a secret):\n%s\n",
			cr.APIKey.Prefix, cr.APIKey.User, cr.Key)
		return err
	})
}

func (e *cliEnv) apikeyList(args []string) error {
	fs := newFlags("apikey list")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound apikey list USER [--json]")
	}
	list := func(c *admin.Client) ([]auth.APIKey, error) { return c.APIKeys(pos[0]) }
	return fetch(e, *asJSON, list, printAPIKeys)
}

func printAPIKeys(w io.Writer, keys []auth.APIKey) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PREFIX\tNAME\tCREATED\tLAST USED")
	for _, k := range keys {
		last := "never"
		if !k.LastUsed.IsZero() {
			last = k.LastUsed.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Prefix, k.Name, k.Created.Local().Format(time.DateTime), last)
	}
	return tw.Flush()
}

func (e *cliEnv) apikeyRevoke(args []string) error {
	pos, err := parseInterspersed(newFlags("apikey revoke"), args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: outbound apikey revoke USER PREFIX")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	n, err := c.RevokeAPIKey(pos[0], pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d API key(s) of %s revoked\n", n, pos[0])
	return nil
}
