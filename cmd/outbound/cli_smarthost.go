package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"outbound/admin"
)

// smarthostFlags are the settings flags shared by add and update.
type smarthostFlags struct {
	fs                                                                   *flag.FlagSet
	kind, preset, host, tls, username, caFile, spfInclude, spfPolicy, fb *string
	passwordFile                                                         *string
	port                                                                 *int
	passwordStdin, force, asJSON                                         *bool
}

func newSmarthostFlags(name string) *smarthostFlags {
	fs := newFlags(name)
	return &smarthostFlags{
		fs:            fs,
		kind:          fs.String("kind", "", "smtp (an SMTP server, the default) or capture (keep the mail in the capture store, never send it; takes no other setting)"),
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

// smtpOnly are the flags of settings a capture smarthost does not have.
var smtpOnly = []string{"preset", "host", "port", "tls", "username", "password-stdin", "password-file", "ca-file", "spf-include", "spf-policy", "fallback"}

// checkCapture refuses, for --kind capture, the SMTP settings given with
// it, by flag: a capture smarthost connects to nothing.
func (f *smarthostFlags) checkCapture(set map[string]bool) error {
	if *f.kind != "capture" {
		return nil
	}
	var given []string
	for _, name := range smtpOnly {
		if set[name] {
			given = append(given, "--"+name)
		}
	}
	if len(given) > 0 {
		return fmt.Errorf("--kind capture keeps the mail instead of sending it and connects to nothing: it takes no %s (leave them out)", strings.Join(given, ", "))
	}
	return nil
}

// password reads the password --password-stdin or --password-file asks
// for; ok is false when neither was given.
func (f *smarthostFlags) password(e *cliEnv) (password string, ok bool, err error) {
	return e.readSecret(*f.passwordStdin, *f.passwordFile)
}

const smarthostAddUsage = "usage: outbound smarthost add NAME (--preset P | --host H --port N --tls implicit|starttls|none) [--username U] [--password-stdin | --password-file F] [--ca-file F] [--spf-include D] [--spf-policy off|warn|enforce] [--fallback NAME] [--force]\n       outbound smarthost add NAME --kind capture"

func (e *cliEnv) smarthostCommand(args []string) error {
	del := func(args []string) error {
		return e.actOn(args, "usage: outbound smarthost del NAME", (*admin.Client).DeleteSmarthost, "deleted smarthost %s")
	}
	return subcommands("smarthost", "smarthost needs a subcommand: add, list, show, test, update, del", args, map[string]func([]string) error{
		"add":    e.smarthostAdd,
		"update": e.smarthostUpdate,
		"test":   e.smarthostTest,
		"list": func(args []string) error {
			return listCommand(e, "smarthost list", args, (*admin.Client).Smarthosts, printSmarthosts)
		},
		"show": func(args []string) error {
			return showCommand(e, "smarthost show", "usage: outbound smarthost show NAME [--json]", args, (*admin.Client).Smarthost, e.showSmarthostWebhook)
		},
		"del":    del,
		"delete": del,
	})
}

func (e *cliEnv) smarthostAdd(args []string) error {
	f := newSmarthostFlags("smarthost add")
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		return err
	}
	if err := f.checkCapture(given(f.fs)); err != nil {
		return err
	}
	capture := *f.kind == "capture"
	if len(pos) != 1 || (!capture && *f.preset == "" && (*f.host == "" || *f.port == 0 || *f.tls == "")) {
		return usagef(smarthostAddUsage)
	}
	password, _, err := f.password(e)
	if err != nil {
		return err
	}
	req := admin.SmarthostRequest{Name: pos[0], Kind: *f.kind, ConnectionSettings: admin.ConnectionSettings{Preset: *f.preset,
		Host: *f.host, Port: *f.port, TLS: *f.tls, Username: *f.username, Password: password, CAFile: *f.caFile},
		SPFInclude: *f.spfInclude, SPFPolicy: *f.spfPolicy, Fallback: *f.fb, Force: *f.force}
	return e.saveSmarthost(func(c *admin.Client) (*admin.SmarthostResult, error) { return c.AddSmarthost(req) }, *f.asJSON, "added")
}

func (e *cliEnv) smarthostUpdate(args []string) error {
	f := newSmarthostFlags("smarthost update")
	hooks := addWebhookFlags(f.fs)
	pos, err := parseInterspersed(f.fs, args)
	if err != nil {
		return err
	}
	set := given(f.fs)
	if secrets, err := hooks.collect(f.fs, set); err != nil || secrets != nil {
		if err != nil || len(pos) != 1 {
			return cmpErr(err, usagef("usage: outbound smarthost update NAME [--webhook-signing-key-file F] [--sendgrid-public-key-file F] [--postmark-user U --postmark-password-file F] [--sns-topic-arn ARN] [--generic-webhook-secret-file F] [--clear-webhook-secrets a,b]"))
		}
		if err := e.setWebhookSecrets(pos[0], secrets); err != nil {
			return err
		}
		// Only webhook secrets given: the connection is left alone.
		others := false
		for name := range set {
			others = others || (!hooks.isWebhookFlag(name) && name != "json")
		}
		if !others {
			return nil
		}
	}
	if len(pos) != 1 || set["preset"] {
		return usagef("usage: outbound smarthost update NAME [--kind smtp|capture] [--host H] [--port N] [--tls M] [--username U] [--password-stdin | --password-file F] [--ca-file F] [--spf-include D] [--spf-policy off|warn|enforce] [--fallback NAME] [--force] [webhook secrets: see outbound help]")
	}
	if err := f.checkCapture(set); err != nil {
		return err
	}
	var req admin.SmarthostUpdateRequest
	for name, dst := range map[string]**string{"kind": &req.Kind, "host": &req.Host, "tls": &req.TLS, "username": &req.Username,
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
	return e.saveSmarthost(func(c *admin.Client) (*admin.SmarthostResult, error) { return c.UpdateSmarthost(pos[0], req) }, *f.asJSON, "updated")
}

// saveSmarthost adds or updates a smarthost with save, then prints the
// connection test and what was saved; a refused save prints the report
// and returns the API's error.
func (e *cliEnv) saveSmarthost(save func(*admin.Client) (*admin.SmarthostResult, error), asJSON bool, done string) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	res, saveErr := save(c)
	if asJSON && (res.Test != nil || res.Smarthost != nil) {
		if err := printJSON(e.stdout, res); err != nil {
			return err
		}
	} else if res.Test != nil {
		fmt.Fprint(e.stdout, res.Test.String())
	}
	if saveErr != nil {
		return saveErr
	}
	if !asJSON {
		h := res.Smarthost
		if !res.Test.OK {
			fmt.Fprintf(e.stdout, "warning: the connection test failed; saved anyway (--force)\n")
		}
		if h.Kind == "capture" {
			fmt.Fprintf(e.stdout, "%s smarthost %s: capture (its users' mail is kept in the capture store, never sent)\n", done, h.Name)
			return nil
		}
		fmt.Fprintf(e.stdout, "%s smarthost %s: %s:%d (%s), username %s, password %s\n", done, h.Name, h.Host, h.Port, h.TLS, dash(h.Username), dash(h.Password))
	}
	return nil
}

// smarthostTest runs a smarthost's connection test; a failed test exits 1
// after its report.
func (e *cliEnv) smarthostTest(args []string) error {
	ok := false
	test := func(c *admin.Client, name string) (*admin.SmarthostResult, error) {
		res, err := c.TestSmarthost(name)
		ok = err == nil && res.Test.OK
		return res, err
	}
	err := showCommand(e, "smarthost test", "usage: outbound smarthost test NAME", args, test, func(w io.Writer, res *admin.SmarthostResult) error {
		_, err := fmt.Fprint(w, res.Test.String())
		return err
	})
	if err == nil && !ok {
		return exitError{code: 1}
	}
	return err
}

func printSmarthosts(w io.Writer, list []admin.SmarthostView) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tHOST\tPORT\tTLS\tUSERNAME\tPASSWORD\tUSERS")
	for _, h := range list {
		if h.Kind == "capture" {
			fmt.Fprintf(tw, "%s\t(capture)\t-\t-\t-\t-\t%d\n", h.Name, len(h.Users))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\n", h.Name, h.Host, h.Port, h.TLS, dash(h.Username), dash(h.Password), len(h.Users))
	}
	return tw.Flush()
}

func showSmarthost(w io.Writer, h *admin.SmarthostView) error {
	fmt.Fprintf(w, "Name:        %s\n", h.Name)
	if h.Kind == "capture" {
		fmt.Fprintf(w, "Kind:        capture (mail is kept in the capture store, never sent)\n")
		fmt.Fprintf(w, "Users:       %s\n", dash(strings.Join(h.Users, ", ")))
		fmt.Fprintf(w, "Created:     %s\n", h.Created.Local().Format("2006-01-02 15:04:05"))
		return nil
	}
	fmt.Fprintf(w, "Kind:        smtp\n")
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
	return nil
}
