package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"outbound/admin"
)

// dnsCommand runs `outbound dns records DOMAIN`: the records the domain
// should publish for this relay, from the running server's users and
// routes.
func (e *cliEnv) dnsCommand(args []string) error {
	return subcommands("dns", "dns needs a subcommand: records", args, map[string]func([]string) error{
		"records": func(args []string) error {
			return showCommand(e, "dns records", "usage: outbound dns records DOMAIN [--json]", args,
				(*admin.Client).DNSRecords, printDNSRecords)
		},
	})
}

// printDNSRecords prints the records in zone-file form, each with what
// it is for, then the notes.
func printDNSRecords(w io.Writer, rep *admin.DNSRecords) error {
	fmt.Fprintf(w, "; records %s should publish for %s (users: %d)\n", rep.Domain, rep.Hostname, len(rep.Users))
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, r := range rep.Records {
		fmt.Fprintf(tw, "%s\tIN %s\t%s\t; %s\n", r.Name, r.Type, r.Value, r.Purpose)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "; note: %s\n", n)
	}
	return nil
}
