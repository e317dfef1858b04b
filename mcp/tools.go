package mcp

import (
	"context"
	"strconv"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"outbound/admin"
	"outbound/auth"
	"outbound/provider"
)

// The tools' inputs: a field without omitempty is required in the schema
// the SDK derives; the jsonschema tag is the field's description.

type none struct{}

type nameArg struct {
	Name string `json:"name" jsonschema:"the name (login of a user, or name of a smarthost)"`
}

type userArg struct {
	User string `json:"user" jsonschema:"the user's login"`
}

type optionalUser struct {
	User string `json:"user,omitempty" jsonschema:"only this user's (login); all when left out"`
}

type idArg struct {
	ID string `json:"id" jsonschema:"the message's queue ID (from queue_list)"`
}

type userAddIn struct {
	Name      string   `json:"name" jsonschema:"the user's SMTP login, usually an e-mail address"`
	AllowFrom []string `json:"allow_from,omitempty" jsonschema:"addresses or domains the user may send from besides its login"`
}

type userSetIn struct {
	Name        string    `json:"name" jsonschema:"the user's login"`
	AllowFrom   *[]string `json:"allow_from,omitempty" jsonschema:"replaces the addresses or domains the user may send from besides its login"`
	DisplayName *string   `json:"display_name,omitempty" jsonschema:"put in From headers that have only an address; empty clears it"`
	ReplyTo     *string   `json:"reply_to,omitempty" jsonschema:"added as Reply-To to messages without one; empty clears it"`
	SPFPolicy   *string   `json:"spf_policy,omitempty" jsonschema:"the user's own SPF policy: off, warn or enforce; empty follows its route"`
	DSN         *bool     `json:"dsn,omitempty" jsonschema:"whether the relay e-mails the user delivery status notifications (bounces)"`
}

type routeIn struct {
	Users     []string `json:"users,omitempty" jsonschema:"the users to route; give users or from"`
	From      string   `json:"from,omitempty" jsonschema:"move every user now routed through this smarthost ('default': the default route); give users or from"`
	Smarthost string   `json:"smarthost" jsonschema:"the smarthost their mail leaves through from now on"`
}

type routeDefaultIn struct {
	Users []string `json:"users,omitempty" jsonschema:"the users to move back to the default route; give users or from"`
	From  string   `json:"from,omitempty" jsonschema:"move every user now routed through this smarthost back to the default route; give users or from"`
}

type smarthostAddIn struct {
	Name       string   `json:"name" jsonschema:"a name for the smarthost, e.g. sendgrid"`
	Kind       string   `json:"kind,omitempty" jsonschema:"smtp (the default: an SMTP server) or capture (keep its users' mail in the capture store, never send it; takes no other setting)"`
	Preset     string   `json:"preset,omitempty" jsonschema:"a provider preset (smarthost_presets) filling host, port, tls and username"`
	Host       string   `json:"host,omitempty" jsonschema:"the SMTP host; required without a preset"`
	Port       int      `json:"port,omitempty" jsonschema:"the SMTP port; required without a preset"`
	TLS        string   `json:"tls,omitempty" jsonschema:"implicit, starttls or none; required without a preset"`
	Username   string   `json:"username,omitempty" jsonschema:"the SMTP AUTH username"`
	Password   string   `json:"password,omitempty" jsonschema:"the SMTP AUTH password or API key; stored encrypted, never shown back"`
	CAFile     string   `json:"ca_file,omitempty" jsonschema:"a PEM file on the relay's host of CAs to trust besides the system roots"`
	SPFInclude string   `json:"spf_include,omitempty" jsonschema:"the domain senders include in their SPF record for this upstream (the preset's by default)"`
	SPFIPs     []string `json:"spf_ips,omitempty" jsonschema:"the upstream's egress IPs, for SPF, when it has no include"`
	Fallback   string   `json:"fallback,omitempty" jsonschema:"another smarthost to use when this one is down"`
	Force      bool     `json:"force,omitempty" jsonschema:"save even when the connection test fails"`
}

type smarthostUpdateIn struct {
	Name       string    `json:"name" jsonschema:"the smarthost to change"`
	Kind       *string   `json:"kind,omitempty" jsonschema:"smtp or capture; to capture drops the SMTP settings, back to smtp needs them again"`
	Host       *string   `json:"host,omitempty" jsonschema:"new SMTP host"`
	Port       *int      `json:"port,omitempty" jsonschema:"new SMTP port"`
	TLS        *string   `json:"tls,omitempty" jsonschema:"implicit, starttls or none"`
	Username   *string   `json:"username,omitempty" jsonschema:"new SMTP AUTH username"`
	Password   *string   `json:"password,omitempty" jsonschema:"new SMTP AUTH password or API key; never shown back"`
	CAFile     *string   `json:"ca_file,omitempty" jsonschema:"PEM file of CAs to trust; empty clears it"`
	SPFInclude *string   `json:"spf_include,omitempty" jsonschema:"SPF include domain"`
	SPFIPs     *[]string `json:"spf_ips,omitempty" jsonschema:"the upstream's egress IPs, for SPF"`
	Fallback   *string   `json:"fallback,omitempty" jsonschema:"fallback smarthost; empty clears it"`
	Force      bool      `json:"force,omitempty" jsonschema:"save even when the connection test fails"`
}

type limitsIn struct {
	User    string `json:"user" jsonschema:"the user's login"`
	PerHour *int   `json:"per_hour,omitempty" jsonschema:"recipients per hour; left out keeps the current value"`
	PerDay  *int   `json:"per_day,omitempty" jsonschema:"recipients per day (at most the relay's limits.max_per_day); left out keeps the current value"`
}

type queueListIn struct {
	Status string `json:"status,omitempty" jsonschema:"only messages with a recipient in this status: queued, delivered or failed"`
	User   string `json:"user,omitempty" jsonschema:"only this user's messages"`
}

type spfIn struct {
	User    string   `json:"user,omitempty" jsonschema:"check each sender domain of this user against its route's upstream; or give domain"`
	Domain  string   `json:"domain,omitempty" jsonschema:"the domain to check, with include or ips"`
	Include string   `json:"include,omitempty" jsonschema:"with domain: the upstream's SPF include, e.g. sendgrid.net"`
	IPs     []string `json:"ips,omitempty" jsonschema:"with domain: the upstream's egress IPs"`
}

type domainArg struct {
	Domain string `json:"domain" jsonschema:"the sender domain, e.g. example.com"`
}

type suppressionAddIn struct {
	Addr   string `json:"addr" jsonschema:"the recipient address to stop sending to"`
	User   string `json:"user,omitempty" jsonschema:"whose list it goes on (required when the relay keeps one list per user)"`
	Reason string `json:"reason,omitempty" jsonschema:"why, quoted in the relay's refusal"`
}

type suppressionDeleteIn struct {
	Addr string `json:"addr" jsonschema:"the suppressed recipient address"`
	User string `json:"user,omitempty" jsonschema:"lift it on this user's list only; every list when left out"`
}

type eventsIn struct {
	User   string `json:"user,omitempty" jsonschema:"only this user's messages' events"`
	Since  string `json:"since,omitempty" jsonschema:"only events at or after this time (RFC 3339, e.g. 2026-01-02T15:04:05Z)"`
	Cursor string `json:"cursor,omitempty" jsonschema:"continue after an earlier page (its next_cursor)"`
	Limit  int    `json:"limit,omitempty" jsonschema:"the most events in the page"`
}

// register adds every tool to s.
func (t *tools) register(s *sdk.Server) {
	c := t.Client

	// Users.
	sdk.AddTool(s, &sdk.Tool{Name: "users_list", Description: "List the relay's users: login, allowed sender addresses and domains, route.",
		Annotations: readOnly("List users")},
		func(ctx context.Context, _ *sdk.CallToolRequest, _ none) (*sdk.CallToolResult, any, error) {
			return call(c.Users())
		})
	sdk.AddTool(s, &sdk.Tool{Name: "user_show", Description: "One user: route and its smarthost (password masked), limits, sender settings (display name, Reply-To, SPF policy, DSN), usage.",
		Annotations: readOnly("Show a user")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in nameArg) (*sdk.CallToolResult, any, error) {
			return call(c.User(in.Name))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "user_add", Description: "Add a user (an SMTP login) with a generated password, returned once in this answer: give it to the user, the relay keeps only its hash.",
		Annotations: change("Add a user", false)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in userAddIn) (*sdk.CallToolResult, any, error) {
			password := auth.GeneratePassword()
			u, err := c.CreateUser(admin.CreateUserRequest{Name: in.Name, Password: password, AllowFrom: in.AllowFrom})
			if err != nil {
				return nil, nil, err
			}
			return reply(struct {
				*admin.UserView
				Password string `json:"password"`
				Note     string `json:"note"`
			}{u, password, "the password is shown this once; the relay stores only its hash"})
		})
	sdk.AddTool(s, &sdk.Tool{Name: "user_set", Description: "Change a user's sender settings: allowed senders, From display name, Reply-To, SPF policy, delivery notifications. Only the fields given change.",
		Annotations: change("Set sender settings", true)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in userSetIn) (*sdk.CallToolResult, any, error) {
			req := admin.UpdateUserRequest{AllowFrom: in.AllowFrom, DisplayName: in.DisplayName, ReplyTo: in.ReplyTo, SPFPolicy: in.SPFPolicy, DSN: in.DSN}
			if req == (admin.UpdateUserRequest{}) {
				return nil, nil, fixf("nothing to change: give at least one of allow_from, display_name, reply_to, spf_policy, dsn")
			}
			return call(c.UpdateUser(in.Name, req))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "users_route", Description: "Route users' mail through a smarthost: the users given, or every user of the route in from. All change or none; the answer lists them with their limits on the new route.",
		Annotations: change("Route users through a smarthost", true)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in routeIn) (*sdk.CallToolResult, any, error) {
			if err := oneOf(in.Users, in.From); err != nil {
				return nil, nil, err
			}
			return call(c.SetRoutes(admin.RouteRequest{Users: in.Users, From: in.From, Smarthost: in.Smarthost}))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "users_route_default", Description: "Move users back to the default route and its limits: the users given, or every user of the smarthost in from.",
		Annotations: change("Back to the default route", true)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in routeDefaultIn) (*sdk.CallToolResult, any, error) {
			if err := oneOf(in.Users, in.From); err != nil {
				return nil, nil, err
			}
			return call(c.SetRoutes(admin.RouteRequest{Users: in.Users, From: in.From, Default: true}))
		})

	// Smarthosts.
	sdk.AddTool(s, &sdk.Tool{Name: "smarthost_presets", Description: "The provider presets (SendGrid, Mailgun, Amazon SES, Postmark, Gmail, ...): host, port, TLS mode, what to give as username and password, the SPF include.",
		Annotations: readOnly("Provider presets")},
		func(ctx context.Context, _ *sdk.CallToolRequest, _ none) (*sdk.CallToolResult, any, error) {
			return reply(presets())
		})
	sdk.AddTool(s, &sdk.Tool{Name: "smarthosts_list", Description: "List the smarthosts (upstreams) with their users; passwords masked.",
		Annotations: readOnly("List smarthosts")},
		func(ctx context.Context, _ *sdk.CallToolRequest, _ none) (*sdk.CallToolResult, any, error) {
			return call(c.Smarthosts())
		})
	sdk.AddTool(s, &sdk.Tool{Name: "smarthost_show", Description: "One smarthost: connection settings, masked password, SPF identity, fallback, users.",
		Annotations: readOnly("Show a smarthost")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in nameArg) (*sdk.CallToolResult, any, error) {
			return call(c.Smarthost(in.Name))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "smarthost_add", Description: "Add a smarthost: the connection is tested first (connect, TLS, AUTH; the report lists each step) and the smarthost saved only when the test passes, unless force. Give a preset, or host, port and tls.",
		Annotations: change("Add a smarthost", false)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in smarthostAddIn) (*sdk.CallToolResult, any, error) {
			return saved(c.AddSmarthost(admin.SmarthostRequest{Name: in.Name, Kind: in.Kind,
				ConnectionSettings: admin.ConnectionSettings{Preset: in.Preset, Host: in.Host, Port: in.Port, TLS: in.TLS,
					Username: in.Username, Password: in.Password, CAFile: in.CAFile},
				SPFInclude: in.SPFInclude, SPFIPs: in.SPFIPs, Fallback: in.Fallback, Force: in.Force}))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "smarthost_test", Description: "Test a saved smarthost's connection step by step (connect, TLS, AUTH) without sending mail; the report says which step failed and why.",
		Annotations: &sdk.ToolAnnotations{Title: "Test a smarthost", ReadOnlyHint: true, OpenWorldHint: ptr(true)}},
		func(ctx context.Context, _ *sdk.CallToolRequest, in nameArg) (*sdk.CallToolResult, any, error) {
			return call(c.TestSmarthost(in.Name))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "smarthost_update", Description: "Change a smarthost's settings (only those given); the connection is tested again and nothing is saved when the test fails, unless force.",
		Annotations: change("Update a smarthost", true)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in smarthostUpdateIn) (*sdk.CallToolResult, any, error) {
			return saved(c.UpdateSmarthost(in.Name, admin.SmarthostUpdateRequest{Kind: in.Kind, Host: in.Host, Port: in.Port, TLS: in.TLS,
				Username: in.Username, Password: in.Password, CAFile: in.CAFile, SPFInclude: in.SPFInclude, SPFIPs: in.SPFIPs,
				Fallback: in.Fallback, Force: in.Force}))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "smarthost_delete", Description: "Delete a smarthost and its stored credentials; refused while users are routed through it (move them with users_route_default first).",
		Annotations: destructive("Delete a smarthost")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in nameArg) (*sdk.CallToolResult, any, error) {
			if err := c.DeleteSmarthost(in.Name); err != nil {
				return nil, nil, err
			}
			return done("smarthost %s deleted", in.Name)
		})

	// Limits and usage.
	sdk.AddTool(s, &sdk.Tool{Name: "limits_set", Description: "Override a user's sending limits (recipients per hour and per day), within the relay's limits.max_per_day.",
		Annotations: change("Set limits", true)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in limitsIn) (*sdk.CallToolResult, any, error) {
			if in.PerHour == nil && in.PerDay == nil {
				return nil, nil, fixf("nothing to change: give per_hour, per_day or both")
			}
			return call(c.SetLimits(in.User, admin.LimitsRequest{PerHour: in.PerHour, PerDay: in.PerDay}))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "limits_reset", Description: "Drop a user's own limits: back to its route's default limits.",
		Annotations: destructive("Reset limits")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in userArg) (*sdk.CallToolResult, any, error) {
			return call(c.ClearLimits(in.User))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "usage", Description: "Recipients sent in the last hour and day, the limits, what remains and when the next slot frees up: one user's, or every user's.",
		Annotations: readOnly("Usage")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in optionalUser) (*sdk.CallToolResult, any, error) {
			if in.User != "" {
				return call(c.UserUsage(in.User))
			}
			return call(c.Usage())
		})

	// Queue.
	sdk.AddTool(s, &sdk.Tool{Name: "queue_list", Description: "List queued and finished messages: envelope, recipients and their status, attempts.",
		Annotations: readOnly("List the queue")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in queueListIn) (*sdk.CallToolResult, any, error) {
			return call(c.Messages(admin.QueueFilter{Status: in.Status, User: in.User}))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "queue_show", Description: "One message: envelope, each recipient's status and last reply, attempts, and its events.",
		Annotations: readOnly("Show a message")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in idArg) (*sdk.CallToolResult, any, error) {
			return call(c.MessageDetail(in.ID))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "queue_retry", Description: "Retry a pending message now instead of at its next scheduled attempt.",
		Annotations: change("Retry a message", true)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in idArg) (*sdk.CallToolResult, any, error) {
			if err := c.Retry(in.ID); err != nil {
				return nil, nil, err
			}
			return done("message %s will be retried now", in.ID)
		})
	sdk.AddTool(s, &sdk.Tool{Name: "queue_bounce", Description: "Give up on a pending message: its pending recipients fail and the sender gets a bounce (DSN).",
		Annotations: destructive("Bounce a message")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in idArg) (*sdk.CallToolResult, any, error) {
			if err := c.Bounce(in.ID); err != nil {
				return nil, nil, err
			}
			return done("message %s bounced; the sender is notified", in.ID)
		})
	sdk.AddTool(s, &sdk.Tool{Name: "queue_delete", Description: "Delete a message from the queue without notifying anyone.",
		Annotations: destructive("Delete a message")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in idArg) (*sdk.CallToolResult, any, error) {
			if err := c.DeleteMessage(in.ID); err != nil {
				return nil, nil, err
			}
			return done("message %s deleted", in.ID)
		})

	// DNS.
	sdk.AddTool(s, &sdk.Tool{Name: "spf_check", Description: "Does a domain's SPF record authorize the upstream? Give user to check each of its sender domains against its route, or domain with include or ips. A failing check says the exact record change to make.",
		Annotations: &sdk.ToolAnnotations{Title: "SPF check", ReadOnlyHint: true, OpenWorldHint: ptr(true)}},
		func(ctx context.Context, _ *sdk.CallToolRequest, in spfIn) (*sdk.CallToolResult, any, error) {
			switch {
			case in.User != "" && in.Domain != "":
				return nil, nil, fixf("give user or domain, not both")
			case in.User != "":
				return call(c.UserSPF(in.User))
			case in.Domain == "":
				return nil, nil, fixf("give user (check its sender domains) or domain (with include or ips)")
			case in.Include == "" && len(in.IPs) == 0:
				return nil, nil, fixf("with domain, give the upstream's include (e.g. sendgrid.net) or ips; or give user to check against its route")
			case t.SPFCheck == nil:
				return nil, nil, fixf("this server cannot check a domain alone; give user to check against its route")
			}
			return call(t.SPFCheck(ctx, in.Domain, in.Include, in.IPs))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "dns_records", Description: "The DNS records a sender domain should publish for this relay: SPF for its users' routes, submission SRV, autoconfig names, DKIM.",
		Annotations: readOnly("DNS records")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in domainArg) (*sdk.CallToolResult, any, error) {
			return call(c.DNSRecords(in.Domain))
		})
	if t.Doctor != nil {
		sdk.AddTool(s, &sdk.Tool{Name: "doctor", Description: "Check the running relay end to end: certificates, hostname, listeners, routes, SPF, DKIM and DMARC, file modes, disk. Each failed check comes with its fix.",
			Annotations: &sdk.ToolAnnotations{Title: "Doctor", ReadOnlyHint: true, OpenWorldHint: ptr(true)}},
			func(ctx context.Context, _ *sdk.CallToolRequest, _ none) (*sdk.CallToolResult, any, error) {
				return call(t.Doctor(ctx))
			})
	}

	// Suppressions and events.
	sdk.AddTool(s, &sdk.Tool{Name: "suppressions_list", Description: "Recipients the relay no longer sends to (hard bounces, complaints, added by hand), and why.",
		Annotations: readOnly("List suppressions")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in optionalUser) (*sdk.CallToolResult, any, error) {
			return call(c.Suppressions(in.User))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "suppression_add", Description: "Stop sending to a recipient address: the relay refuses it with the reason.",
		Annotations: change("Suppress an address", true)},
		func(ctx context.Context, _ *sdk.CallToolRequest, in suppressionAddIn) (*sdk.CallToolResult, any, error) {
			return call(c.AddSuppression(admin.SuppressionRequest{Addr: in.Addr, User: in.User, Reason: in.Reason}))
		})
	sdk.AddTool(s, &sdk.Tool{Name: "suppression_delete", Description: "Lift a suppression: mail to the address is accepted again.",
		Annotations: destructive("Lift a suppression")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in suppressionDeleteIn) (*sdk.CallToolResult, any, error) {
			if err := c.DeleteSuppression(in.Addr, in.User); err != nil {
				return nil, nil, err
			}
			return done("suppression of %s lifted", in.Addr)
		})
	sdk.AddTool(s, &sdk.Tool{Name: "events_list", Description: "What happened to each message and recipient, oldest first: queued, delivered, deferred, bounced, the provider's reports. One page; continue with its next_cursor.",
		Annotations: readOnly("List events")},
		func(ctx context.Context, _ *sdk.CallToolRequest, in eventsIn) (*sdk.CallToolResult, any, error) {
			f := admin.EventFilter{User: in.User, Cursor: in.Cursor, Limit: in.Limit}
			if in.Since != "" {
				since, err := time.Parse(time.RFC3339, in.Since)
				if err != nil {
					return nil, nil, fixf("since %q is not an RFC 3339 time like 2026-01-02T15:04:05Z", in.Since)
				}
				f.Since = since
			}
			return call(c.Events(f))
		})
}

// call is the result of a tool that answers with what the API answered,
// or the API's refusal as a tool error.
func call[T any](v T, err error) (*sdk.CallToolResult, any, error) {
	if err != nil {
		return nil, nil, err
	}
	return reply(v)
}

// saved is the result of adding or updating a smarthost: a refused save
// (its connection test failed) is a tool error that still carries the
// test's steps, so that the assistant can say which one failed.
func saved(res *admin.SmarthostResult, err error) (*sdk.CallToolResult, any, error) {
	if err != nil {
		if apiStatus(err) == 422 && res != nil && res.Test != nil {
			return refused(err.Error(), res)
		}
		return nil, nil, err
	}
	return reply(res)
}

// oneOf checks that a route change names its users one way.
func oneOf(users []string, from string) error {
	switch {
	case len(users) > 0 && from != "":
		return fixf("give users or from, not both")
	case len(users) == 0 && from == "":
		return fixf("give users (a list of logins) or from (a smarthost name, or 'default')")
	}
	return nil
}

// presetView is a provider preset as the smarthost_presets tool shows it.
type presetView struct {
	Name         string   `json:"name"`
	Title        string   `json:"title"`
	Host         string   `json:"host"`
	Port         int      `json:"port"`
	TLS          string   `json:"tls"`
	Username     string   `json:"username,omitempty"`
	UsernameHint string   `json:"username_hint,omitempty"`
	SPFInclude   string   `json:"spf_include,omitempty"`
	SPFNote      string   `json:"spf_note,omitempty"`
	OtherPorts   []string `json:"other_ports,omitempty"`
}

func presets() []presetView {
	var out []presetView
	for _, p := range provider.All() {
		v := presetView{Name: p.Name, Title: p.Title, Host: p.Host, Port: p.Port, TLS: string(p.TLS),
			Username: p.Username, UsernameHint: p.UsernameHint, SPFInclude: p.SPFInclude, SPFNote: p.SPFNote}
		for _, pm := range p.AltPorts {
			v.OtherPorts = append(v.OtherPorts, fmtPort(pm))
		}
		out = append(out, v)
	}
	return out
}

func fmtPort(pm provider.PortMode) string {
	return strconv.Itoa(pm.Port) + " " + string(pm.TLS)
}
