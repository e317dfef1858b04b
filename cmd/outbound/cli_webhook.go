package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"outbound/admin"
	"outbound/events"
	"outbound/webhooks"
)

// webhookCommand manages a user's webhook endpoints: where its messages'
// events are POSTed, signed per Standard Webhooks (docs/webhooks.md).
func (e *cliEnv) webhookCommand(args []string) error {
	return subcommands("webhook", "webhook needs a subcommand: list, add, del, enable", args, map[string]func([]string) error{
		"list":   e.webhookList,
		"add":    e.webhookAdd,
		"del":    e.webhookDel,
		"enable": e.webhookEnable,
	})
}

func (e *cliEnv) webhookList(args []string) error {
	fs := newFlags("webhook list")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound webhook list USER [--json]")
	}
	list := func(c *admin.Client) ([]webhooks.Endpoint, error) { return c.Webhooks(pos[0]) }
	return fetch(e, *asJSON, list, printWebhooks)
}

func (e *cliEnv) webhookAdd(args []string) error {
	fs := newFlags("webhook add")
	kinds := fs.String("events", "", "comma-separated event kinds to send (default: every kind)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: outbound webhook add USER URL [--events KIND,...]")
	}
	req := admin.WebhookRequest{URL: pos[1]}
	for _, k := range strings.Split(*kinds, ",") {
		if k = strings.TrimSpace(k); k != "" {
			req.Kinds = append(req.Kinds, events.Kind(k))
		}
	}
	add := func(c *admin.Client) (*admin.WebhookCreated, error) { return c.AddWebhook(pos[0], req) }
	return fetch(e, *asJSON, add, func(w io.Writer, cr *admin.WebhookCreated) error {
		_, err := fmt.Fprintf(w, "webhook %s added for %s: %s\nsigning secret (shown only now): %s\n",
			cr.ID, cr.User, cr.URL, cr.Secret)
		return err
	})
}

func (e *cliEnv) webhookDel(args []string) error {
	pos, err := parseInterspersed(newFlags("webhook del"), args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: outbound webhook del USER ID")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	if err := c.DeleteWebhook(pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "webhook %s deleted\n", pos[1])
	return nil
}

func (e *cliEnv) webhookEnable(args []string) error {
	pos, err := parseInterspersed(newFlags("webhook enable"), args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: outbound webhook enable USER ID")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	ep, err := c.EnableWebhook(pos[0], pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "webhook %s enabled; %d waiting events go first\n", ep.ID, ep.Pending)
	return nil
}

func printWebhooks(w io.Writer, list []webhooks.Endpoint) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tURL\tEVENTS\tSECRET\tPENDING\tSTATE")
	for _, ep := range list {
		kinds := "all"
		if len(ep.Kinds) > 0 {
			var ks []string
			for _, k := range ep.Kinds {
				ks = append(ks, string(k))
			}
			kinds = strings.Join(ks, ",")
		}
		state := "enabled"
		if !ep.Disabled.IsZero() {
			state = fmt.Sprintf("disabled %s: %s", ep.Disabled.Local().Format(time.DateTime), ep.DisabledReason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", ep.ID, ep.URL, kinds, ep.SecretHint, ep.Pending, state)
	}
	return tw.Flush()
}
