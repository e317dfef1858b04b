package main

import (
	"bufio"
	"bytes"
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

	"outbound/admin"
)

// callKeep is apiClient.call that also decodes an error answer into out,
// for answers that carry details besides the message (a failed
// connection test's report).
func (c *apiClient) callKeep(method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(b))
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
	jerr := json.Unmarshal(data, out)
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	return jerr
}

// smarthostFlags are the settings flags shared by add and update.
type smarthostFlags struct {
	fs                                                             *flag.FlagSet
	preset, host, tls, username, caFile, spfInclude, spfPolicy, fb *string
	passwordFile                                                   *string
	port                                                           *int
	passwordStdin, force, asJSON                                   *bool
}

func newSmarthostFlags(name string) *smarthostFlags {
	fs := newFlags(name)
	return &smarthostFlags{
		fs:            fs,
		preset:        fs.String("preset", "", "provider preset (fills host, port, TLS mode, username)"),
		host:          fs.String("host", "", "SMTP host"),
		port:          fs.Int("port", 0, "port"),
		tls:           fs.String("tls", "", "implicit, starttls or none (loopback only)"),
		username:      fs.String("username", "", "AUTH username"),
		passwordStdin: fs.Bool("password-stdin", false, "read the password from one line of stdin"),
		passwordFile:  fs.String("password-file", "", "read the password from this file"),
		caFile:        fs.String("ca-file", "", "PEM file of CAs trusted for this upstream"),
		spfInclude:    fs.String("spf-include", "", "SPF include domain senders publish for this upstream"),
		spfPolicy:     fs.String("spf-policy", "", "off, warn or enforce for senders whose SPF does not authorize this upstream; \"\" follows default_route.spf_policy"),
		fb:            fs.String("fallback", "", "smarthost to fail over to: takes the attempt while this one is backed off, or when it fails temporarily before accepting the message (never both)"),
		force:         fs.Bool("force", false, "save even when the connection test fails"),
		asJSON:        fs.Bool("json", false, "print JSON"),
	}
}

func (f *smarthostFlags) set() map[string]bool {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	return set
}

// password reads the secret from stdin or a file: never from argv, where
// other users of the machine could read it. ok is false when neither was
// asked for.
func (f *smarthostFlags) password(e *cliEnv) (password string, ok bool, err error) {
	switch {
	case *f.passwordStdin && *f.passwordFile != "":
		return "", false, usagef("give --password-stdin or --password-file, not both")
	case *f.passwordStdin:
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", false, errors.New("--password-stdin: no password on standard input: pipe one line")
		}
		return strings.TrimRight(line, "\r\n"), true, nil
	case *f.passwordFile != "":
		data, err := os.ReadFile(*f.passwordFile)
		if err != nil {
			return "", false, fmt.Errorf("--password-file: %w", err)
		}
		return strings.TrimRight(string(data), "\r\n"), true, nil
	}
	return "", false, nil
}

const smarthostAddUsage = "usage: outbound smarthost add NAME (--preset P | --host H --port N --tls implicit|starttls|none) [--username U] [--password-stdin | --password-file F] [--ca-file F] [--spf-include D] [--spf-policy off|warn|enforce] [--fallback NAME] [--force]"

func (e *cliEnv) smarthostCommand(args []string) error {
	if len(args) == 0 {
		return usagef("smarthost needs a subcommand: add, list, show, test, update, del")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add":
		f := newSmarthostFlags("smarthost add")
		pos, err := parseInterspersed(f.fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 || (*f.preset == "" && (*f.host == "" || *f.port == 0 || *f.tls == "")) {
			return usagef(smarthostAddUsage)
		}
		password, _, err := f.password(e)
		if err != nil {
			return err
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		req := admin.SmarthostRequest{Name: pos[0], Preset: *f.preset, Host: *f.host, Port: *f.port, TLS: *f.tls,
			Username: *f.username, Password: password, CAFile: *f.caFile, SPFInclude: *f.spfInclude,
			SPFPolicy: *f.spfPolicy, Fallback: *f.fb, Force: *f.force}
		var res admin.SmarthostResult
		return e.printSmarthostResult(c.callKeep("POST", "/api/smarthosts", req, &res), &res, *f.asJSON, "added")
	case "update":
		f := newSmarthostFlags("smarthost update")
		pos, err := parseInterspersed(f.fs, args)
		if err != nil {
			return err
		}
		set := f.set()
		if len(pos) != 1 || set["preset"] {
			return usagef("usage: outbound smarthost update NAME [--host H] [--port N] [--tls M] [--username U] [--password-stdin | --password-file F] [--ca-file F] [--spf-include D] [--spf-policy off|warn|enforce] [--fallback NAME] [--force]")
		}
		var req admin.SmarthostUpdateRequest
		for name, dst := range map[string]**string{"host": &req.Host, "tls": &req.TLS, "username": &req.Username,
			"ca-file": &req.CAFile, "spf-include": &req.SPFInclude, "spf-policy": &req.SPFPolicy, "fallback": &req.Fallback} {
			if set[name] {
				*dst = new(string)
				**dst = f.fs.Lookup(name).Value.String()
			}
		}
		if set["port"] {
			req.Port = f.port
		}
		req.Force = *f.force
		password, ok, err := f.password(e)
		if err != nil {
			return err
		}
		if ok {
			req.Password = &password
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		var res admin.SmarthostResult
		return e.printSmarthostResult(c.callKeep("PUT", "/api/smarthosts/"+url.PathEscape(pos[0]), req, &res), &res, *f.asJSON, "updated")
	case "test":
		fs := newFlags("smarthost test")
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("usage: outbound smarthost test NAME")
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		var res admin.SmarthostResult
		if err := c.call("POST", "/api/smarthosts/"+url.PathEscape(pos[0])+"/test", nil, &res); err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(e.stdout, res); err != nil {
				return err
			}
		} else {
			fmt.Fprint(e.stdout, res.Test.String())
		}
		if !res.Test.OK {
			return exitError{code: 1}
		}
		return nil
	case "list":
		return fetchAll(e, "smarthost list", args, "/api/smarthosts", func(w io.Writer, list *[]admin.SmarthostView) error {
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tHOST\tPORT\tTLS\tUSERNAME\tPASSWORD\tUSERS")
			for _, h := range *list {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\n", h.Name, h.Host, h.Port, h.TLS, dash(h.Username), dash(h.Password), len(h.Users))
			}
			return tw.Flush()
		})
	case "show":
		return showOne(e, "smarthost show", "usage: outbound smarthost show NAME [--json]", args, "/api/smarthosts/", showSmarthost)
	case "del", "delete":
		if len(args) != 1 {
			return usagef("usage: outbound smarthost del NAME")
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		if err := c.call("DELETE", "/api/smarthosts/"+url.PathEscape(args[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted smarthost %s\n", args[0])
		return nil
	}
	return usagef("unknown smarthost subcommand %q", sub)
}

// printSmarthostResult prints the connection test and what was saved; a
// refused save prints the report and returns the API's error.
func (e *cliEnv) printSmarthostResult(callErr error, res *admin.SmarthostResult, asJSON bool, done string) error {
	if asJSON && (res.Test != nil || res.Smarthost != nil) {
		if err := printJSON(e.stdout, res); err != nil {
			return err
		}
	} else if res.Test != nil {
		fmt.Fprint(e.stdout, res.Test.String())
	}
	if callErr != nil {
		return callErr
	}
	if !asJSON {
		h := res.Smarthost
		if !res.Test.OK {
			fmt.Fprintf(e.stdout, "warning: the connection test failed; saved anyway (--force)\n")
		}
		fmt.Fprintf(e.stdout, "%s smarthost %s: %s:%d (%s), username %s, password %s\n", done, h.Name, h.Host, h.Port, h.TLS, dash(h.Username), dash(h.Password))
	}
	return nil
}

func showSmarthost(w io.Writer, h *admin.SmarthostView) {
	fmt.Fprintf(w, "Name:        %s\n", h.Name)
	if h.Preset != "" {
		fmt.Fprintf(w, "Preset:      %s\n", h.Preset)
	}
	fmt.Fprintf(w, "Host:        %s\n", h.Host)
	fmt.Fprintf(w, "Port:        %d\n", h.Port)
	fmt.Fprintf(w, "TLS:         %s\n", h.TLS)
	fmt.Fprintf(w, "Username:    %s\n", dash(h.Username))
	fmt.Fprintf(w, "Password:    %s\n", dash(h.Password))
	if h.CAFile != "" {
		fmt.Fprintf(w, "CA file:     %s\n", h.CAFile)
	}
	fmt.Fprintf(w, "SPF include: %s\n", dash(h.SPFInclude))
	if len(h.SPFIPs) > 0 {
		fmt.Fprintf(w, "SPF IPs:     %s\n", strings.Join(h.SPFIPs, ", "))
	}
	policy := h.SPFPolicy
	if policy == "" {
		policy = "default_route.spf_policy"
	}
	fmt.Fprintf(w, "SPF policy:  %s\n", policy)
	if h.Fallback != "" {
		fmt.Fprintf(w, "Fallback:    %s\n", h.Fallback)
	}
	fmt.Fprintf(w, "Users:       %s\n", dash(strings.Join(h.Users, ", ")))
	fmt.Fprintf(w, "Created:     %s\n", h.Created.Local().Format("2006-01-02 15:04:05"))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

const userRouteUsage = "usage: outbound user route USER... --smarthost NAME | outbound user route --from NAME --smarthost OTHER | outbound user route USER... --default"

// userRouteCommand moves users to a smarthost or back to the default
// route, all of them in one transaction.
func (e *cliEnv) userRouteCommand(args []string) error {
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
	c, err := e.client()
	if err != nil {
		return err
	}
	var res admin.RouteResult
	if err := c.call("POST", "/api/routes", admin.RouteRequest{Users: users, From: *from, Smarthost: *to, Default: *def}, &res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	if len(res.Users) == 0 {
		fmt.Fprintf(e.stdout, "no users on %s; nothing moved\n", *from)
		return nil
	}
	for _, u := range res.Users {
		fmt.Fprintf(e.stdout, "%s now on route %s (limits %d per hour, %d per day)\n", u.User, res.Route, u.PerHour, u.PerDay)
	}
	return nil
}

// keyCommand is `outbound key rotate`: the running server re-encrypts every
// smarthost password under a new master key (only it may open the database).
func (e *cliEnv) keyCommand(args []string) error {
	if len(args) != 1 || args[0] != "rotate" {
		return usagef("usage: outbound key rotate")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	var res map[string]int
	if err := c.call("POST", "/api/key-rotate", nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "master key rotated: %d smarthost passwords re-encrypted; data_dir/secrets.key holds the new key (back it up)\n", res["reencrypted"])
	return nil
}
