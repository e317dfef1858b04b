package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"outbound/admin"
	"outbound/dkim"
)

// dkimCommand manages the domains' DKIM signing keys (docs/dkim.md).
func (e *cliEnv) dkimCommand(args []string) error {
	return subcommands("dkim", "dkim needs a subcommand: keygen, list, rotate, records", args, map[string]func([]string) error{
		"keygen":  e.dkimKeygen,
		"list":    e.dkimList,
		"rotate":  e.dkimRotate,
		"records": e.dkimRecords,
	})
}

func (e *cliEnv) dkimKeygen(args []string) error {
	return e.dkimChange("keygen", args, (*admin.Client).GenerateDKIM)
}

func (e *cliEnv) dkimRotate(args []string) error {
	return e.dkimChange("rotate", args, (*admin.Client).RotateDKIM)
}

// dkimChange runs keygen or rotate: both take DOMAIN [--selector S]
// [--algorithm ed25519|rsa|both] and print the keys and the records.
func (e *cliEnv) dkimChange(sub string, args []string, call func(*admin.Client, string, admin.DKIMKeyRequest) (*admin.DKIMKeysResult, error)) error {
	fs := newFlags("dkim " + sub)
	selector := fs.String("selector", "", "selector, or its base when both algorithms are made (default: ob and today's date)")
	algorithm := fs.String("algorithm", "", "ed25519, rsa or both (default: both; rotate: those of the active keys)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound dkim %s DOMAIN [--selector S] [--algorithm ed25519|rsa|both]", sub)
	}
	req := admin.DKIMKeyRequest{Selector: *selector, Algorithm: *algorithm}
	return fetch(e, *asJSON, func(c *admin.Client) (*admin.DKIMKeysResult, error) { return call(c, pos[0], req) },
		func(w io.Writer, res *admin.DKIMKeysResult) error {
			for _, k := range res.Added {
				fmt.Fprintf(w, "new %s key for %s, selector %s: it signs from now on\n", k.Algorithm, k.Domain, k.Selector)
			}
			for _, k := range res.Retired {
				fmt.Fprintf(w, "retired %s key %s: it signs nothing more; keep its record published until %s, then remove it\n",
					k.Algorithm, k.Selector, k.PublishUntil.Format(time.DateOnly))
			}
			fmt.Fprintln(w, "\npublish these DNS records (the new ones before mail leaves, or receivers cannot verify it):")
			return printDKIMRecords(w, res.Records)
		})
}

func (e *cliEnv) dkimList(args []string) error {
	fs := newFlags("dkim list")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("usage: outbound dkim list [DOMAIN] [--json]")
	}
	domain := ""
	if len(pos) == 1 {
		domain = pos[0]
	}
	return fetch(e, *asJSON, func(c *admin.Client) ([]admin.DKIMKey, error) { return c.DKIMKeys(domain) },
		func(w io.Writer, keys []admin.DKIMKey) error {
			if len(keys) == 0 {
				_, err := fmt.Fprintln(w, "no DKIM keys: outbound dkim keygen DOMAIN makes them")
				return err
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DOMAIN\tSELECTOR\tALGORITHM\tCREATED\tSTATE")
			for _, k := range keys {
				state := "signing"
				if !k.Active {
					state = "retired, publish until " + k.PublishUntil.Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Domain, k.Selector, k.Algorithm, k.Created.Format(time.DateOnly), state)
			}
			return tw.Flush()
		})
}

// dkimRecords prints the DKIM and DMARC records of a domain.
func (e *cliEnv) dkimRecords(args []string) error {
	return showCommand(e, "dkim records", "usage: outbound dkim records DOMAIN [--json]", args,
		(*admin.Client).DKIMRecords, printDKIMRecords)
}

// printDKIMRecords prints records in zone-file form, each after a
// comment saying what it is for.
func printDKIMRecords(w io.Writer, records []dkim.Record) error {
	for _, r := range records {
		if _, err := fmt.Fprintf(w, "; %s\n%s. IN %s %s\n", r.Note, r.Name, r.Type, dkim.Quoted(r.Value)); err != nil {
			return err
		}
	}
	return nil
}
