package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"outbound/admin"
	"outbound/queue"
)

// cliEnv carries what every CLI command needs.
type cliEnv struct {
	configPath     string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// client returns an admin API client for the server configured by -config.
func (e *cliEnv) client() (*apiClient, error) {
	cfg, err := loadConfig(e.configPath)
	if err != nil {
		return nil, err
	}
	if cfg.Admin.Listen == "" {
		return nil, errors.New("admin.listen is empty in the configuration: the CLI needs the admin API")
	}
	token, err := readToken(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &apiClient{base: "http://" + cfg.Admin.Listen, token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

type apiClient struct {
	base, token string
	http        *http.Client
}

// call sends a JSON request and decodes the JSON answer into out (if not
// nil). API errors come back with the server's message, which says what to
// fix.
func (c *apiClient) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the relay's admin API at %s: is `outbound serve` running? (%v)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
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

func (e *cliEnv) userCommand(args []string) error {
	if len(args) == 0 {
		return usagef("user needs a subcommand: add, list, show, set, del, passwd, route")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add":
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
			password = generatePassword()
		} else if password, err = e.readPassword("Password for " + pos[0]); err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		var u admin.UserView
		if err := c.call("POST", "/api/users", admin.CreateUserRequest{Name: pos[0], Password: password, AllowFrom: allow}, &u); err != nil {
			return err
		}
		if *asJSON {
			out := struct {
				admin.UserView
				Password string `json:"password,omitempty"`
			}{UserView: u}
			if *generate {
				out.Password = password
			}
			return printJSON(e.stdout, out)
		}
		fmt.Fprintf(e.stdout, "added user %s\n", u.Name)
		if *generate {
			fmt.Fprintf(e.stdout, "password: %s\n", password)
		}
		return nil
	case "list":
		return fetchAll(e, "user list", args, "/api/users", func(w io.Writer, users *[]admin.UserView) error {
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROUTE\tALLOWED SENDERS\tCREATED")
			for _, u := range *users {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Route, dash(strings.Join(u.AllowFrom, ",")), u.Created.Format("2006-01-02"))
			}
			return tw.Flush()
		})
	case "show":
		return e.userShow(args)
	case "set":
		return e.userSet(args)
	case "del", "delete":
		if len(args) != 1 {
			return usagef("usage: outbound user del NAME")
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		if err := c.call("DELETE", "/api/users/"+url.PathEscape(args[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted user %s\n", args[0])
		return nil
	case "passwd":
		if len(args) != 1 {
			return usagef("usage: outbound user passwd NAME")
		}
		password, err := e.readPassword("New password for " + args[0])
		if err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		if err := c.call("PUT", "/api/users/"+url.PathEscape(args[0])+"/password", admin.PasswordRequest{Password: password}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "password changed for %s\n", args[0])
		return nil
	}
	return usagef("unknown user subcommand %q", sub)
}

const userSetUsage = `usage: outbound user set USER [--allow-from ADDR_OR_DOMAIN]... [--clear-allow-from] [--display-name NAME] [--reply-to ADDR] [--spf-policy off|warn|enforce|route] (at least one; "" clears a setting)`

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
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(pos) != 1 || !(set["allow-from"] || *clearAllow || set["display-name"] || set["reply-to"] || set["spf-policy"]) {
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
	c, err := e.client()
	if err != nil {
		return err
	}
	var d admin.UserDetail
	if err := c.call("PATCH", "/api/users/"+url.PathEscape(pos[0]), req, &d); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, d)
	}
	fmt.Fprintf(e.stdout, "updated user %s\n", d.Name)
	printSenderSettings(e.stdout, &d)
	return nil
}

// userShow prints one user: route, limits, sender settings, usage and its
// smarthost (the password masked by the server).
func (e *cliEnv) userShow(args []string) error {
	return showOne(e, "user show", "usage: outbound user show USER [--json]", args, "/api/users/", showUser)
}

// fetchAll runs a command without arguments that prints what GET path
// answers: as JSON with --json, else by human.
func fetchAll[T any](e *cliEnv, command string, args []string, path string, human func(io.Writer, *T) error) error {
	fs := newFlags(command)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	var v T
	if err := c.call("GET", path, nil, &v); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	return human(e.stdout, &v)
}

// showOne runs a "show NAME" command: GET path+NAME from the admin API,
// printed as JSON with --json, else by human.
func showOne[T any](e *cliEnv, command, usage string, args []string, path string, human func(io.Writer, *T)) error {
	fs := newFlags(command)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s", usage)
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	var v T
	if err := c.call("GET", path+url.PathEscape(pos[0]), nil, &v); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, v)
	}
	human(e.stdout, &v)
	return nil
}

func showUser(w io.Writer, d *admin.UserDetail) {
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
			return
		}
		fmt.Fprintf(w, "Smarthost:       %s (%s:%d, %s)\n", h.Name, h.Host, h.Port, h.TLS)
		fmt.Fprintf(w, "  Username:      %s\n", dash(h.Username))
		fmt.Fprintf(w, "  Password:      %s\n", dash(h.Password))
	}
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
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on standard input: pipe one line, or use --generate-password")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// generatePassword returns 20 characters from an unambiguous alphabet
// (about 110 bits).
func generatePassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *cliEnv) queueCommand(args []string) error {
	if len(args) == 0 {
		return usagef("queue needs a subcommand: list, show, stats, retry, flush, bounce, delete")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		fs := newFlags("queue list")
		status := fs.String("status", "", "only messages with a recipient in this status: queued, delivered, failed")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parseInterspersed(fs, args); err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		var msgs []*queue.Message
		if err := c.call("GET", "/api/queue?status="+url.QueryEscape(*status), nil, &msgs); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, msgs)
		}
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tUSER\tFROM\tRCPTS\tSTATUS\tNEXT ATTEMPT")
		for _, m := range msgs {
			next := "-"
			if !m.NextAttempt.IsZero() {
				next = m.NextAttempt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Created.Local().Format(time.DateTime),
				m.User, orNull(m.From), len(m.Recipients), statusSummary(m), next)
		}
		return tw.Flush()
	case "show":
		return showOne(e, "queue show", "usage: outbound queue show ID [--json]", args, "/api/queue/", showMessage)
	case "retry", "bounce", "delete":
		if len(args) != 1 {
			return usagef("usage: outbound queue %s ID", sub)
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		method, path, done := "POST", "/api/queue/"+url.PathEscape(args[0])+"/"+sub, map[string]string{
			"retry": "will be retried now", "bounce": "bounced; the sender gets a notification", "delete": "deleted",
		}[sub]
		if sub == "delete" {
			method, path = "DELETE", "/api/queue/"+url.PathEscape(args[0])
		}
		if err := c.call(method, path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s %s\n", args[0], done)
		return nil
	case "flush":
		fs := newFlags("queue flush")
		upstream := fs.String("upstream", "", "only messages for this route (\"default\" for the default route)")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parseInterspersed(fs, args); err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		var res map[string]int
		if err := c.call("POST", "/api/queue-flush?upstream="+url.QueryEscape(*upstream), nil, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "%d pending messages will be retried now, spread out over a few moments\n", res["flushed"])
		return nil
	case "stats":
		return fetchAll(e, "queue stats", args, "/api/queue-stats", func(w io.Writer, st *admin.QueueStats) error {
			fmt.Fprintf(w, "messages:     %d (%d pending, %d notifications pending, %d redacted)\n", st.Messages, st.Pending, st.Notifications, st.Redacted)
			fmt.Fprintf(w, "recipients:   %d queued, %d delivered, %d failed\n", st.Recipients["queued"], st.Recipients["delivered"], st.Recipients["failed"])
			if st.OldestPending != nil {
				fmt.Fprintf(w, "oldest pending: %s (%s ago)\n", st.OldestPending.Local().Format(time.DateTime), time.Since(*st.OldestPending).Round(time.Second))
			}
			return nil
		})
	}
	return usagef("unknown queue subcommand %q", sub)
}

func orNull(addr string) string {
	if addr == "" {
		return "<>"
	}
	return addr
}

// statusSummary counts recipients by status: "2 delivered, 1 queued".
func statusSummary(m *queue.Message) string {
	counts := map[queue.Status]int{}
	for _, r := range m.Recipients {
		counts[r.Status]++
	}
	var parts []string
	for _, s := range []queue.Status{queue.Delivered, queue.Queued, queue.Failed} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

func showMessage(w io.Writer, m *queue.Message) {
	fmt.Fprintf(w, "ID:          %s\n", m.ID)
	fmt.Fprintf(w, "User:        %s\n", m.User)
	fmt.Fprintf(w, "From:        %s\n", orNull(m.From))
	fmt.Fprintf(w, "Message-ID:  %s\n", m.MessageID)
	fmt.Fprintf(w, "Size:        %d bytes\n", m.Size)
	route := m.Route
	if route == "" {
		route = "default"
	}
	fmt.Fprintf(w, "Route:       %s\n", route)
	fmt.Fprintf(w, "Created:     %s\n", m.Created.Local().Format(time.DateTime))
	if !m.NextAttempt.IsZero() {
		fmt.Fprintf(w, "Next try:    %s\n", m.NextAttempt.Local().Format(time.DateTime))
	}
	if !m.Finished.IsZero() {
		fmt.Fprintf(w, "Finished:    %s\n", m.Finished.Local().Format(time.DateTime))
	}
	if !m.Redacted.IsZero() {
		fmt.Fprintf(w, "Content:     REDACTED on %s (only this stub remains)\n", m.Redacted.Local().Format(time.DateTime))
	}
	fmt.Fprintln(w, "Recipients:")
	for _, r := range m.Recipients {
		fmt.Fprintf(w, "  %-9s %s (attempts %d)\n", r.Status, r.Addr, r.Attempts)
		if r.Reply != "" {
			fmt.Fprintf(w, "            %s\n", r.Reply)
		}
	}
	if len(m.Attempts) > 0 {
		fmt.Fprintln(w, "Attempts:")
		for _, a := range m.Attempts {
			fmt.Fprintf(w, "  %s via %s (%s): %s\n", a.At.Local().Format(time.DateTime), a.Upstream, a.Duration.Round(time.Millisecond), a.Result)
		}
	}
}
