package main

import (
	"fmt"
	"io"
	"strings"

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

// printDNSRecords prints the records in zone-file form, each under a
// comment that says what it is for, then the notes: ready to paste into a
// zone file. Columns are not aligned across records: one long value (an
// RSA DKIM key) would push every other line's comment hundreds of
// columns right.
func printDNSRecords(w io.Writer, rep *admin.DNSRecords) error {
	lines := []string{fmt.Sprintf("; records %s should publish for %s (users: %d)", rep.Domain, rep.Hostname, len(rep.Users))}
	for _, r := range rep.Records {
		lines = append(lines, "", zoneComment(r.Purpose), fmt.Sprintf("%s IN %s %s", r.Name, r.Type, r.Value))
	}
	if len(rep.Notes) > 0 {
		lines = append(lines, "")
	}
	for _, n := range rep.Notes {
		lines = append(lines, zoneComment("note: "+n))
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

// zoneComment makes text a zone-file comment, every line of it.
func zoneComment(text string) string {
	return "; " + strings.ReplaceAll(text, "\n", "\n; ")
}
