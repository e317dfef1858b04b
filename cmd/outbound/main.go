// Command outbound is the relay's single binary: `outbound serve` runs the
// relay; every other subcommand is the operator's CLI, which talks to the
// running server's admin API (bbolt lets only one process open the
// database, so the CLI never opens it itself; `store migrate`, which runs
// while the relay is stopped, is the exception).
//
// This is the only package that reads the configuration; it hands every
// other package a plain options struct.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"outbound/bounce"
)

const usage = `outbound — an SMTP submission relay

Usage:
  outbound [-config FILE] COMMAND [ARGS]

Commands:
  serve                         run the relay
  user add NAME [--allow-from ADDR_OR_DOMAIN]... [--generate-password]
                                add a user; password from stdin (one line) or a prompt
  user list                     list users
  user show USER                a user's route, limits, sender settings, usage
                                and smarthost (password masked)
  user set USER [--allow-from ADDR_OR_DOMAIN]... [--clear-allow-from]
        [--display-name NAME] [--reply-to ADDR] [--spf-policy P] [--dsn on|off]
                                change what is given: --allow-from replaces the
                                allowed senders; the display name fills From
                                headers without one, Reply-To is added when
                                absent (never replacing the client's); --dsn off
                                stops delivery notices by e-mail; "" clears
  user del NAME                 delete a user
  user passwd NAME              set a user's password (stdin or prompt)
  user route USER... --smarthost NAME
                                route users through a smarthost (all or none)
  user route --from NAME --smarthost OTHER
                                move every user of smarthost NAME ("default":
                                of the default route) to OTHER
  user route USER... --default  back to the default route and its limits
  smarthost add NAME (--preset P | --host H --port N --tls implicit|starttls|none)
        [--username U] [--password-stdin | --password-file F] [--ca-file F]
        [--spf-include D] [--spf-policy P] [--fallback NAME] [--force]
                                test the connection, then save (refused when
                                the test fails, unless --force)
  smarthost add NAME --kind capture
                                a smarthost that keeps its users' mail in the
                                capture store, never sends it (no other flag;
                                refused on a production-looking relay unless
                                allow_capture_in_production = true)
  smarthost list                list smarthosts (passwords masked)
  smarthost show NAME           one smarthost, its users, the masked password
  smarthost test NAME           connection test, step by step; exits 1 on failure
  smarthost update NAME [--kind smtp|capture] [--host H] [--port N] [--tls M]
        [--username U] [--password-stdin | --password-file F] [--ca-file F]
        [--spf-include D] [--spf-policy P] [--fallback NAME] [--force]
                                change settings (tested again before saving);
                                --kind capture drops the SMTP settings, --kind
                                smtp needs them again
  smarthost update NAME [--webhook-signing-key-file F] [--sendgrid-public-key-file F]
        [--postmark-user U --postmark-password-file F] [--sns-topic-arn ARN]
        [--generic-webhook-secret-file F] [--clear-webhook-secrets a,b]
                                set the provider's webhook secrets (sealed; shown
                                masked), see docs/provider-webhooks.md
  smarthost del NAME            delete a smarthost no user is routed through
  operator add NAME             add an operator of the web interface; password
                                from stdin (one line) or a prompt
  operator list                 list operators
  operator del NAME             delete an operator (its sessions end)
  key rotate                    re-encrypt smarthost passwords, provider webhook
                                secrets, DKIM keys and webhook signing secrets
                                under a new master key (data_dir/secrets.key)
  usage [USER]                  sent in the last hour and day, limits, next free slot
  limits set USER [--per-hour N] [--per-day N]
                                override a user's limits (within limits.max_per_day)
  limits reset USER             back to the route's default limits
  spf check DOMAIN [--route default | --include DOMAIN | --ip IP]...
                                does DOMAIN's SPF authorize the upstream? exits 1 unless pass
  dns records DOMAIN [--json]   the DNS records DOMAIN should publish for this relay:
                                SPF, submission SRV, autoconfig names, DKIM keys
                                and a DMARC suggestion, in zone-file form
  dkim keygen DOMAIN [--selector S] [--algorithm ed25519|rsa|both]
                                make DOMAIN's DKIM signing keys (default both:
                                selectors S-ed25519 and S-rsa); prints the records
  dkim list [DOMAIN]            the signing keys, and which are retired
  dkim rotate DOMAIN [--selector S] [--algorithm A]
                                new keys sign at once; the old stop signing and
                                stay published until the date it prints
  dkim records DOMAIN           the DKIM TXT records and a DMARC suggestion
  autoconfig link USER [--base URL]
                                a link that downloads USER's Apple profile
                                (expires after autoconfig.link_lifetime)
  queue list [--status S]       list messages (S: queued, delivered, failed)
  queue show ID                 show one message (says when its content was redacted)
  queue stats                   counts by status, oldest pending message
  queue retry ID                retry a pending message now
  queue flush [--upstream NAME] retry every pending message now, spread out
  queue bounce ID               fail a pending message; the sender gets a DSN
  queue delete ID               delete a message without notification
  events [--user U] [--since T] [--follow] [--json]
                                what happened to each message and recipient
                                (T: RFC 3339, a date, or a duration ago: 24h);
                                --follow keeps printing new events
  capture list [--to ADDR] [--subject TEXT]
                                messages the capture route kept instead of sending
  capture show ID [--raw]       one captured message (--raw: its bytes as sent)
  capture delete ID | clear     delete one captured message, or all of them
  suppression list [--user U]   recipients mail is no longer sent to, and why
  suppression add ADDR [--user U] [--reason R]
                                stop mail to ADDR (--user required under
                                [suppression] scope = "user")
  suppression del ADDR [--user U]
                                lift a suppression (without --user: on every list)
  webhook list USER             where USER's message events are POSTed
  webhook add USER URL [--events KIND,...]
                                add an endpoint (https, public address); prints
                                its signing secret once (docs/webhooks.md)
  webhook del USER ID           delete an endpoint and what waits for it
  webhook enable USER ID        send to a disabled endpoint again
  apikey create USER [--name N] a key for the HTTP send API (docs/send-api.md),
                                printed once; only its hash is kept
  apikey list USER              USER's keys: prefix, name, creation, last use
  apikey revoke USER PREFIX     revoke the key(s) starting with PREFIX
  bounce classify               classify upstream replies read from stdin
                                (CODE<TAB>ENHANCED<TAB>TEXT per line)
  doctor [--min-free SIZE|N%] [--json]
                                check the running relay: certificates, hostname,
                                listeners, routes, SPF, file modes, disk, admin
                                listener; each failure with its fix, exits 1
  mcp                           serve the admin operations as MCP tools on stdin/stdout
                                for an AI assistant (docs/assistants.md)
  store migrate                 with the relay stopped, copy this data_dir's shared
                                state and quota counts into the PostgreSQL [store]
                                and verify it; the queue and captured messages stay
                                (store migrate --help says what moves and what not)
  config check                  validate the configuration and exit
  version                       print the version

Without -config the embedded defaults are used (see outbound.example.toml).
Add --json to list and show commands for machine-readable output.
`

var version = "dev"

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "outbound: %v\n\n%s", err, usage)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "outbound: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run parses the global flags and dispatches. -config may also follow the
// command ("outbound serve -config FILE"), as the README shows.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	global := flag.NewFlagSet("outbound", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	configPath := global.String("config", "", "configuration file")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		return usagef("%v", err)
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usagef("no command given")
	}
	cmd, rest := rest[0], rest[1:]
	rest, path := extractConfigFlag(rest)
	if path != "" {
		*configPath = path
	}
	env := &cliEnv{configPath: *configPath, stdin: stdin, stdout: stdout, stderr: stderr}
	if command, ok := env.commands()[cmd]; ok {
		return command(rest)
	}
	switch cmd {
	case "serve":
		if len(rest) > 0 {
			return usagef("serve takes no arguments besides -config, got %q", rest)
		}
		return serve(*configPath)
	case "bounce":
		if len(rest) != 1 || rest[0] != "classify" {
			return usagef("usage: outbound bounce classify < replies.tsv")
		}
		return bounce.ClassifyLines(stdin, stdout)
	case "config":
		if len(rest) != 1 || rest[0] != "check" {
			return usagef("usage: outbound [-config FILE] config check")
		}
		if _, err := loadConfig(*configPath); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "configuration ok")
		return nil
	case "version":
		fmt.Fprintln(stdout, "outbound", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usagef("unknown command %q", cmd)
}

// extractConfigFlag removes "-config FILE" / "--config=FILE" from args.
func extractConfigFlag(args []string) (rest []string, path string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "-config" || a == "--config") && i+1 < len(args):
			path = args[i+1]
			i++
		case strings.HasPrefix(a, "-config=") || strings.HasPrefix(a, "--config="):
			path = a[strings.IndexByte(a, '=')+1:]
		default:
			rest = append(rest, a)
		}
	}
	return rest, path
}
