package main

// The operator's CLI: one file a noun (cli_user.go, cli_queue.go, ...),
// each command a call of the admin API through admin.Client. This file
// holds what they share: the client, flags, passwords and printing.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"outbound/admin"
)

// cliEnv carries what every CLI command needs.
type cliEnv struct {
	configPath     string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// client returns an admin API client for the server configured by -config.
func (e *cliEnv) client() (*admin.Client, error) {
	cfg, err := loadConfig(e.configPath)
	if err != nil {
		return nil, err
	}
	base, httpClient, err := adminEndpoint(cfg)
	if err != nil {
		return nil, err
	}
	token, err := readToken(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return admin.NewClient(base, token, httpClient), nil
}

// commands are the CLI's nouns, each in its file (cli_user.go, ...).
func (e *cliEnv) commands() map[string]func(args []string) error {
	return map[string]func([]string) error{
		"user":        e.userCommand,
		"smarthost":   e.smarthostCommand,
		"key":         e.keyCommand,
		"queue":       e.queueCommand,
		"usage":       e.usageCommand,
		"limits":      e.limitsCommand,
		"spf":         e.spfCommand,
		"dns":         e.dnsCommand,
		"dkim":        e.dkimCommand,
		"autoconfig":  e.autoconfigCommand,
		"operator":    e.operatorCommand,
		"events":      e.eventsCommand,
		"suppression": e.suppressionCommand,
		"capture":     e.captureCommand,
		"webhook":     e.webhookCommand,
		"apikey":      e.apikeyCommand,
		"doctor":      e.doctorCommand,
		"mcp":         e.mcpCommand,
		"store":       e.storeCommand,
	}
}

// subcommands runs the subcommand args[0] names with the rest of args.
// Without one the usage error is needs; an unknown one is named.
func subcommands(noun, needs string, args []string, subs map[string]func(args []string) error) error {
	if len(args) == 0 {
		return usagef("%s", needs)
	}
	run, ok := subs[args[0]]
	if !ok {
		return usagef("unknown %s subcommand %q", noun, args[0])
	}
	return run(args[1:])
}

// fetch calls the API with get and prints its answer: as JSON with
// --json (the API's own JSON), else by human.
func fetch[T any](e *cliEnv, asJSON bool, get func(*admin.Client) (T, error), human func(io.Writer, T) error) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	v, err := get(c)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(e.stdout, v)
	}
	return human(e.stdout, v)
}

// listCommand runs a command without arguments that prints what list
// answers.
func listCommand[T any](e *cliEnv, command string, args []string, list func(*admin.Client) (T, error), human func(io.Writer, T) error) error {
	fs := newFlags(command)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	return fetch(e, *asJSON, list, human)
}

// showCommand runs a "show NAME" command: it prints what show answers for
// NAME.
func showCommand[T any](e *cliEnv, command, usage string, args []string, show func(c *admin.Client, name string) (T, error), human func(io.Writer, T) error) error {
	fs := newFlags(command)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s", usage)
	}
	return fetch(e, *asJSON, func(c *admin.Client) (T, error) { return show(c, pos[0]) }, human)
}

// actOn runs a command of exactly one argument and no flags (the usage
// otherwise): act on it, then print done, a format whose one %s is the
// argument.
func (e *cliEnv) actOn(args []string, usage string, act func(c *admin.Client, arg string) error, done string) error {
	if len(args) != 1 {
		return usagef("%s", usage)
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	if err := act(c, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, done+"\n", args[0])
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("user add NAME --allow-from x" as well as "user add --allow-from x NAME").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// given returns the names of the flags set on the command line.
func given(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// readPassword reads one line from stdin when it is not a terminal, or
// prompts twice without echo. Passwords never come from argv, where other
// users of the machine could read them.
func (e *cliEnv) readPassword(prompt string) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(e.stderr, "%s: ", prompt)
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(e.stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords do not match")
		}
		return string(p1), nil
	}
	line, ok := readLine(e.stdin)
	if !ok {
		return "", errors.New("no password on standard input: pipe one line, or use --generate-password")
	}
	return line, nil
}

// readSecret reads a secret from one line of stdin (fromStdin) or from
// file: never from argv, where other users of the machine could read it.
// ok is false when neither was asked for.
func (e *cliEnv) readSecret(fromStdin bool, file string) (secret string, ok bool, err error) {
	switch {
	case fromStdin && file != "":
		return "", false, usagef("give --password-stdin or --password-file, not both")
	case fromStdin:
		line, ok := readLine(e.stdin)
		if !ok {
			return "", false, errors.New("--password-stdin: no password on standard input: pipe one line")
		}
		return line, true, nil
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", false, fmt.Errorf("--password-file: %w", err)
		}
		return strings.TrimRight(string(data), "\r\n"), true, nil
	}
	return "", false, nil
}

// readLine reads one line, without its line break; ok is false when there
// is none (an empty input, or a read error before anything came).
func readLine(r io.Reader) (line string, ok bool) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", false
	}
	return strings.TrimRight(line, "\r\n"), true
}

// newTable writes the CLI's tables: columns aligned with two spaces
// between them. Flush it at the end.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// exitError ends the program with a status code and no further message
// (the command already printed what there is to say).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
