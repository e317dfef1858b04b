package main

import (
	"fmt"
	"io"

	"outbound/admin"
)

// operatorCommand is `outbound operator add|list|del`: the accounts that
// sign in to the web interface with every right. Senders need none: they
// sign in with their SMTP login.
func (e *cliEnv) operatorCommand(args []string) error {
	del := func(args []string) error {
		return e.actOn(args, "usage: outbound operator del NAME", (*admin.Client).DeleteOperator, "deleted operator %s")
	}
	return subcommands("operator", "operator needs a subcommand: add, list, del", args, map[string]func([]string) error{
		"add": e.operatorAdd,
		"list": func(args []string) error {
			return listCommand(e, "operator list", args, (*admin.Client).Operators, printOperators)
		},
		"del":    del,
		"delete": del,
	})
}

// operatorAdd adds an operator; the password comes from stdin (one line)
// or a prompt, never from the command line.
func (e *cliEnv) operatorAdd(args []string) error {
	if len(args) != 1 {
		return usagef("usage: outbound operator add NAME (password from stdin or a prompt)")
	}
	password, err := e.readPassword("Password for operator " + args[0])
	if err != nil {
		return err
	}
	add := func(c *admin.Client) (*admin.OperatorView, error) {
		return c.AddOperator(admin.OperatorRequest{Name: args[0], Password: password})
	}
	return fetch(e, false, add, func(w io.Writer, op *admin.OperatorView) error {
		_, err := fmt.Fprintf(w, "added operator %s: sign in to the web interface at admin.listen\n", op.Name)
		return err
	})
}

func printOperators(w io.Writer, ops []admin.OperatorView) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "OPERATOR\tCREATED")
	for _, op := range ops {
		fmt.Fprintf(tw, "%s\t%s\n", op.Name, op.Created.Format("2006-01-02"))
	}
	return tw.Flush()
}
