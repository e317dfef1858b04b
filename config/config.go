// Package config is the relay's TOML configuration: the documented schema,
// its safe defaults, loading (defaults → file → validate) and the errors that
// name the key to fix.
//
// Only cmd/outbound reads a Config; it hands every other package a plain
// options struct built from it.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"outbound/internal/netutil"
)

// Config is the whole configuration file. Every field has a default (see
// Default) and a doc tag that the reference in docs/config.md is checked
// against.
type Config struct {
	Hostname     string     `toml:"hostname" doc:"Name used in EHLO to upstreams, in the greeting and in Received headers."`
	DataDir      string     `toml:"data_dir" doc:"Directory for the bbolt database, the self-signed certificate, the ACME account and certificates (acme/), the admin token and the secrets key. Created with mode 0700."`
	TLS          TLS        `toml:"tls"`
	ACME         ACME       `toml:"acme"`
	Submission   Submission `toml:"submission"`
	Admin        Admin      `toml:"admin"`
	Web          Web        `toml:"web"`
	DefaultRoute Upstream   `toml:"default_route" doc:"The operator's shared upstream smarthost, used by every user without a route of its own."`
	// AllowCaptureInProduction is checked by Validate: see validateCapture.
	AllowCaptureInProduction bool             `toml:"allow_capture_in_production" doc:"Allow default_route.mode = \"capture\", and smarthosts of kind capture, together with [acme] or a submission or admin listen address that is not loopback. Off: such a configuration is refused, and so is adding a capture smarthost to it, so that a production relay cannot silently keep mail instead of sending it."`
	Delivery                 Delivery         `toml:"delivery"`
	Retry                    Retry            `toml:"retry"`
	Retention                Retention        `toml:"retention"`
	Suppression              Suppression      `toml:"suppression"`
	Webhooks                 Webhooks         `toml:"webhooks"`
	ProviderWebhooks         ProviderWebhooks `toml:"provider_webhooks"`
	Autoconfig               Autoconfig       `toml:"autoconfig"`
	SendAPI                  SendAPI          `toml:"send_api"`
	DSN                      DSN              `toml:"dsn"`
	Limits                   Limits           `toml:"limits"`
	DNS                      DNS              `toml:"dns"`
	Log                      Log              `toml:"log"`
	Store                    Store            `toml:"store"`
}

// Store says where the relay keeps its shared state (users, smarthosts,
// suppressions, events, ...): in data_dir's bbolt file, or in a PostgreSQL
// database that several relay nodes share (docs/cluster.md). The message
// queue is always the node's own bbolt file.
type Store struct {
	Kind          string   `toml:"kind" doc:"\"bbolt\" (data_dir/outbound.db, one relay) or \"postgres\" (a database several nodes share: docs/cluster.md)."`
	DSN           string   `toml:"dsn" doc:"For kind = \"postgres\": the connection string, as a URL (postgres://user@host:5432/outbound?sslmode=verify-full) or key=value pairs. Prefer dsn_file when it holds a password."`
	DSNFile       string   `toml:"dsn_file" doc:"A file holding the connection string instead of dsn (keep it mode 0600); surrounding whitespace is ignored."`
	Node          string   `toml:"node" doc:"This node's name in the cluster, shown with each message it holds; each node needs its own. Empty: the machine's host name (not the hostname setting, which nodes behind one name share)."`
	CacheMaxStale Duration `toml:"cache_max_stale" doc:"How long users, smarthosts, suppressions and the other cached settings keep being served from memory after the database became unreachable; past it, logins and routing that need them fail with 451 4.3.0 until it is back."`
}

// TLS is the certificate the submission listeners present.
type TLS struct {
	Cert string `toml:"cert" doc:"PEM certificate chain. Empty: a self-signed ECDSA certificate is generated in data_dir/tls on first start."`
	Key  string `toml:"key" doc:"PEM private key for cert."`
}

// ACME has the relay obtain and renew its certificate itself from an RFC
// 8555 CA (Let's Encrypt by default), instead of [tls] cert and key: the
// one certificate of 465, 587, the admin listener and the provider webhook
// listener. Certificates and the account key are kept in data_dir/acme and
// renewed ahead of expiry without a restart (docs/acme.md).
type ACME struct {
	Enabled    bool     `toml:"enabled" doc:"Obtain and renew the certificate over ACME. Excludes tls.cert and tls.key. Until the first certificate is obtained, TLS handshakes on every listener are refused (clients retry later) and issuance is retried with backoff."`
	Email      string   `toml:"email" doc:"Contact address given to the CA for expiry notices and account recovery. Empty: no contact."`
	Directory  string   `toml:"directory" doc:"The CA's ACME directory URL: Let's Encrypt production by default; its staging is https://acme-staging-v02.api.letsencrypt.org/directory."`
	Challenge  string   `toml:"challenge" doc:"How the CA checks this host controls the names: \"http-01\" (the CA fetches a token over HTTP from port 80, served on http_listen) or \"tls-alpn-01\" (the CA connects with TLS to port 443, served on tls_listen)."`
	HTTPListen string   `toml:"http_listen" doc:"Address answering the http-01 challenge; the CA connects to port 80 of each name."`
	TLSListen  string   `toml:"tls_listen" doc:"Address answering the tls-alpn-01 challenge; the CA connects to port 443 of each name."`
	CAFile     string   `toml:"ca_file" doc:"Extra PEM CA to trust for the ACME directory's HTTPS, besides the system roots (a test CA such as Pebble)."`
	Names      []string `toml:"names" doc:"DNS names the certificate covers. Empty: hostname."`
}

// Submission configures the two listeners clients submit mail to.
type Submission struct {
	ImplicitTLS         string   `toml:"implicit_tls" doc:"Address of the implicit-TLS listener (port 465 in production). Empty disables it."`
	StartTLS            string   `toml:"starttls" doc:"Address of the STARTTLS listener (port 587 in production). AUTH is refused before STARTTLS. Empty disables it."`
	MaxMessageBytes     int64    `toml:"max_message_bytes" doc:"Largest message accepted, in bytes (advertised as SIZE)."`
	MaxRecipients       int      `toml:"max_recipients" doc:"Most recipients per message; more get 452 4.5.3."`
	BareLineEndings     string   `toml:"bare_line_endings" doc:"What to do with a bare CR or LF in DATA: \"normalize\" rewrites it to CRLF, \"reject\" refuses the message with 550 5.6.0. Either way no smuggled message can reach an upstream."`
	ReadTimeout         Duration `toml:"read_timeout" doc:"How long a client may stay silent before the connection is closed."`
	WriteTimeout        Duration `toml:"write_timeout" doc:"How long a reply may take to be written to a client."`
	MaxLineLength       int      `toml:"max_line_length" doc:"Longest command or message line accepted, in bytes; a longer message line gets 550 5.6.0 (permanent). Message lines over RFC 5322's 998 octets below it are accepted and leave re-encoded (quoted-printable or base64), unless the message carries a DKIM-Signature. Each connection may hold a command line this long in memory, before AUTH too."`
	MaxBytesInFlight    int64    `toml:"max_bytes_in_flight" doc:"Bytes of messages being received and queued at once, all sessions together; past it new transactions get 452 4.3.1 (temporary). A message counts up to twice its size while it is rewritten. 0: an eighth of the memory available (the cgroup's memory.max, else MemTotal), and at least twice max_message_bytes."`
	MaxConnections      int      `toml:"max_connections" doc:"Most client connections open at once, per listener; more are closed at once. 0: no limit."`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip" doc:"Most connections from one client address at once, per listener. 0: no limit."`
	AuthMaxFailures     int      `toml:"auth_max_failures" doc:"Failed logins for one login from one client address (an IPv6 client's /64) within auth_failure_window that refuse that login from there (421 4.7.0) for auth_lockout; four times as many failures on any logins refuse the whole address. A login is never refused to other addresses: once it has this many failures from anywhere, each AUTH for it waits 1s, doubling with each further failure up to 10s. 0 disables throttling."`
	AuthFailureWindow   Duration `toml:"auth_failure_window" doc:"Window in which failed logins add up."`
	AuthLockout         Duration `toml:"auth_lockout" doc:"How long AUTH is refused to an address (or a login from an address) after too many failures."`
	MaxErrors           int      `toml:"max_errors" doc:"Refused commands (MAIL, RCPT, DATA, AUTH) one session may collect before it is ended with 421 4.7.0. 0: no limit."`
	ProxyProtocolFrom   []string `toml:"proxy_protocol_from" doc:"Addresses or CIDR ranges of load balancers whose connections to the submission listeners begin with a PROXY protocol header (v1 or v2, HAProxy's): the client address it carries is the one throttling, limits and logs see. A connection from one of them without a header is closed; from any other address a header is not honoured (the session answers it as a bad command). Empty: no PROXY protocol."`
}

// Admin configures the HTTP admin API that the CLI talks to.
type Admin struct {
	Listen string `toml:"listen" doc:"Address of the admin API (at /api), the web interface (at /) and the metrics (at /metrics). On a loopback address it is plain HTTP; on any other it is HTTPS with the submission listeners' certificate (the CLI trusts that certificate's file). The CLI reads the bearer token from data_dir/admin.token."`
}

// Web configures what senders may do through the web interface (and the
// admin API on their behalf).
type Web struct {
	SessionIdle       Duration `toml:"session_idle" doc:"How long a signed-in browser may stay idle before it must sign in again; every page restarts it. A session ends 12 hours after sign-in whatever happens."`
	AllowPrivateHosts bool     `toml:"allow_private_hosts" doc:"Let senders give their own SMTP server on a loopback, private (RFC 1918, fc00::/7), link-local, carrier-grade NAT (100.64.0.0/10), unspecified, multicast or cloud metadata address, or a name resolving to one. Off: such a host is refused when a sender tests or saves it, and delivery refuses to connect to such an address for the smarthosts senders saved, whatever their name resolves to by then. Operators may set any host either way."`
}

// Upstream is a smarthost the relay delivers through.
type Upstream struct {
	Mode         string   `toml:"mode" doc:"\"smtp\" delivers through host; \"capture\" keeps every message in the capture store (outbound capture list) and sends nothing. The embedded defaults (no config file) capture; a config file that sets any default_route key and no mode delivers over smtp."`
	Host         string   `toml:"host" doc:"Smarthost host name."`
	Port         int      `toml:"port" doc:"Smarthost port: 587 for starttls, 465 for implicit."`
	TLSMode      string   `toml:"tls" doc:"\"implicit\", \"starttls\" or \"none\" (none only for a loopback host)."`
	Username     string   `toml:"username" doc:"AUTH user name; empty means deliver without AUTH."`
	Password     string   `toml:"password" doc:"AUTH password. Prefer password_file."`
	PasswordFile string   `toml:"password_file" doc:"File holding the AUTH password (trailing newline ignored)."`
	CAFile       string   `toml:"ca_file" doc:"Extra PEM CA to trust for this upstream, besides the system roots."`
	SPFInclude   string   `toml:"spf_include" doc:"SPF include domain that authorizes this upstream (e.g. _spf.eu.mailgun.org). Empty: the provider preset's include when host is a known provider."`
	SPFIPs       []string `toml:"spf_ips" doc:"Explicit egress IPs of this upstream, checked against sender domains' SPF besides spf_include."`
	SPFPolicy    string   `toml:"spf_policy" doc:"What to do when a sender domain's SPF does not authorize this upstream: \"off\", \"warn\" (accept, log, add an X-Outbound-SPF header) or \"enforce\" (refuse with 550 5.7.23 naming the fix)."`
}

// Delivery tunes the workers that send queued mail upstream.
type Delivery struct {
	Workers                int      `toml:"workers" doc:"Messages delivered in parallel."`
	ConnectionsPerUpstream int      `toml:"connections_per_upstream" doc:"Most simultaneous connections to one upstream; connections are reused between messages. 16 by default: Postfix opens up to 20 to a relayhost (default_destination_concurrency_limit), so every provider takes that many, and with fewer delivery fell behind submission on a busy relay (BENCH.md). An upstream that answers 421 to new connections is backed off."`
	ConnectTimeout         Duration `toml:"connect_timeout" doc:"Time allowed to connect and get a greeting; a dead upstream must not stall the queue."`
	CommandTimeout         Duration `toml:"command_timeout" doc:"Time allowed for each SMTP command and for the whole DATA transfer."`
	IdleConnection         Duration `toml:"idle_connection" doc:"How long an unused upstream connection is kept open for reuse."`
}

// Retry is the schedule of delivery attempts.
type Retry struct {
	Schedule     []Duration `toml:"schedule" doc:"Delays between attempts; the last one repeats."`
	MaxLifetime  Duration   `toml:"max_lifetime" doc:"After this long in the queue a recipient fails permanently."`
	DelayWarning Duration   `toml:"delay_warning" doc:"Tell the sender once when a recipient has been delayed this long. \"0\" disables."`
}

// Retention is how long finished messages are kept, counted from when
// their last recipient reached a final status. The sweep runs at start,
// every hour, and right after `queue delete`, so content goes at most an
// hour after its time. What it removes is then overwritten with zeros in
// the data file, not merely unlinked: at once, or, while a read that began
// before the wipe is still open, on a retry every 10 seconds.
type Retention struct {
	Content Duration `toml:"content" doc:"Redact body and headers of finished messages after this. A notification (DSN) quoting a message loses its copy no later than the message."`
	Stub    Duration `toml:"stub" doc:"Delete the remaining stub (ids, envelope, status, reply) after this."`
}

// Suppression is the list of recipients mail is no longer sent to: those
// whose server said the address does not exist (unknown user or domain),
// and those who complained. RCPT to one is refused with 550 5.1.1 naming
// the reason; `outbound suppression del` lifts it.
type Suppression struct {
	Scope  string   `toml:"scope" doc:"Whose list a suppression goes on: \"user\" (the sending user's own, the default) or \"relay\" (one list for every user)."`
	Expire Duration `toml:"expire" doc:"How long a bounce's suppression lasts (default 2160h, 90 days). Complaints never expire."`
}

// ProviderWebhooks is the listener for providers' event callbacks
// (package providerhooks): Mailgun, SendGrid, Postmark, Amazon SES through
// SNS and a generic signed form post what became of relayed mail to
// /hooks/{smarthost}/{provider}, verified with that smarthost's webhook
// secrets (docs/provider-webhooks.md).
type ProviderWebhooks struct {
	Listen       string `toml:"listen" doc:"Address of the providers' webhook listener. Empty (the default) disables it. On a loopback address it is plain HTTP (behind a reverse proxy that terminates TLS); on any other it is HTTPS with the submission listeners' certificate, which the providers must trust (a public CA's)."`
	MaxBodyBytes int64  `toml:"max_body_bytes" doc:"Largest request body taken, in bytes; a larger one is refused with 413."`
}

// SendAPI is the HTTP send API for apps (package sendapi, docs/send-api.md):
// POST /v1/messages with an API key ('outbound apikey create').
type SendAPI struct {
	Listen string `toml:"listen" doc:"Address of the send API's listener (POST /v1/messages). Empty (the default) disables it. On a loopback address it is plain HTTP (behind a reverse proxy that terminates TLS); on any other it is HTTPS with the submission listeners' certificate."`
}

// Autoconfig answers mail clients' automatic configuration (package
// autoconfig: Thunderbird, Outlook, Apple profiles) for the domains users
// send from. The admin listener always serves it; a listener of its own
// lets it be public while the admin listener stays on loopback.
type Autoconfig struct {
	Listen       string   `toml:"listen" doc:"Address of a listener for autoconfig alone (typically :443). Empty (the default): only the admin listener serves it. On a loopback address it is plain HTTP (behind a reverse proxy that terminates TLS); on any other it is HTTPS with the submission listeners' certificate."`
	IMAPHost     string   `toml:"imap_host" doc:"Incoming (IMAP, port 993) server named in Thunderbird's answer and the Apple profile, which both require one. Empty: the relay's hostname, where nothing answers IMAP: the account sends and reports it cannot fetch mail."`
	LinkLifetime Duration `toml:"link_lifetime" doc:"How long a profile link printed by 'outbound autoconfig link' stays valid."`
}

// Webhooks are the endpoints users register to receive their messages
// events (package webhooks). A user chooses the URL, so by default it must
// be https at a public address, checked when registered and again at
// every connection (a name that later resolves inside is refused).
type Webhooks struct {
	AllowHTTP    bool `toml:"allow_http" doc:"Accept http:// endpoint URLs; off: https only, so events and signatures never cross networks in the clear."`
	AllowPrivate bool `toml:"allow_private" doc:"Accept endpoints on loopback, private, link-local, carrier-grade NAT or cloud metadata addresses, or names resolving to one; off: refused at registration and at every connection."`
}

// DSN configures the delivery status notifications (bounces, delay
// warnings) the relay sends back to senders. They leave through the
// original message's route, from the null reverse-path (MAIL FROM:<>, RFC
// 5321 section 4.5.5). Providers such as Mailgun and Amazon SES refuse
// senders outside the domains verified with them, so the header From is
// at the original sender's own domain by default: the one domain sure to
// be verified with the upstream that took the sender's mail.
type DSN struct {
	From           string `toml:"from" doc:"Header From of notifications: an address, in which {domain} stands for the domain of the original message's sender (the domain the sender verified with its provider). A fixed address works only where the upstream accepts its domain for every sender."`
	FallbackSender string `toml:"fallback_sender" doc:"Envelope sender (MAIL FROM) of a notification when the upstream refuses the null reverse-path with a 5xx; {domain} as in from. Nothing is ever sent about a notification, whichever sender it went out with. Empty: no fallback, the notification fails and is logged."`
}

// Limits are the per-user sending allowances.
type Limits struct {
	DefaultRoutePerHour int `toml:"default_route_per_hour" doc:"Recipients per hour for users on the default route."`
	DefaultRoutePerDay  int `toml:"default_route_per_day" doc:"Recipients per day for users on the default route."`
	OwnSmarthostPerHour int `toml:"own_smarthost_per_hour" doc:"Recipients per hour for users with their own smarthost."`
	OwnSmarthostPerDay  int `toml:"own_smarthost_per_day" doc:"Recipients per day for users with their own smarthost."`
	MaxPerDay           int `toml:"max_per_day" doc:"Ceiling no default or per-user daily limit may exceed."`
}

// DNS configures the resolver used for SPF checks.
type DNS struct {
	Servers []string `toml:"servers" doc:"Resolvers as host:port. Empty: those in /etc/resolv.conf."`
}

// Log configures structured logging.
type Log struct {
	Level  string `toml:"level" doc:"\"debug\", \"info\", \"warn\" or \"error\"."`
	Format string `toml:"format" doc:"\"text\" or \"json\"."`
}

// Default returns the embedded defaults: a relay on unprivileged loopback
// ports with data in ./data, safe to start on a fresh machine.
func Default() Config {
	return Config{
		Hostname: "localhost",
		DataDir:  "./data",
		Submission: Submission{
			ImplicitTLS:         "127.0.0.1:2465",
			StartTLS:            "127.0.0.1:2587",
			MaxMessageBytes:     25 << 20,
			MaxRecipients:       100,
			BareLineEndings:     "normalize",
			ReadTimeout:         Duration(5 * time.Minute),
			WriteTimeout:        Duration(time.Minute),
			MaxLineLength:       64 << 10,
			MaxConnections:      1000,
			MaxConnectionsPerIP: 100,
			AuthMaxFailures:     5,
			AuthFailureWindow:   Duration(5 * time.Minute),
			AuthLockout:         Duration(15 * time.Minute),
			MaxErrors:           20,
			ProxyProtocolFrom:   []string{},
		},
		ACME: ACME{
			Directory:  "https://acme-v02.api.letsencrypt.org/directory",
			Challenge:  "http-01",
			HTTPListen: ":80",
			TLSListen:  ":443",
		},
		Admin: Admin{Listen: "127.0.0.1:8025"},
		Web:   Web{SessionIdle: Duration(30 * time.Minute)},
		DefaultRoute: Upstream{
			// A first run shows the whole path without sending anything
			// (no credentials exist yet); see Parse for config files.
			Mode:      "capture",
			Host:      "smtp.eu.mailgun.org",
			Port:      587,
			TLSMode:   "starttls",
			SPFPolicy: "warn",
		},
		Delivery: Delivery{
			Workers:                32,
			ConnectionsPerUpstream: 16,
			ConnectTimeout:         Duration(15 * time.Second),
			CommandTimeout:         Duration(5 * time.Minute),
			IdleConnection:         Duration(30 * time.Second),
		},
		Retry: Retry{
			Schedule: []Duration{
				Duration(time.Minute), Duration(5 * time.Minute), Duration(15 * time.Minute),
				Duration(30 * time.Minute), Duration(time.Hour), Duration(2 * time.Hour),
				Duration(4 * time.Hour),
			},
			MaxLifetime:  Duration(5 * 24 * time.Hour),
			DelayWarning: Duration(4 * time.Hour),
		},
		Retention: Retention{
			Content: Duration(30 * 24 * time.Hour),
			Stub:    Duration(90 * 24 * time.Hour),
		},
		Suppression:      Suppression{Scope: "user", Expire: Duration(90 * 24 * time.Hour)},
		Store:            Store{Kind: "bbolt", CacheMaxStale: Duration(time.Hour)},
		ProviderWebhooks: ProviderWebhooks{MaxBodyBytes: 1 << 20},
		Autoconfig:       Autoconfig{LinkLifetime: Duration(7 * 24 * time.Hour)},
		DSN:              DSN{From: "postmaster@{domain}", FallbackSender: "postmaster@{domain}"},
		Limits: Limits{
			DefaultRoutePerHour: 2,
			DefaultRoutePerDay:  2,
			OwnSmarthostPerHour: 50,
			OwnSmarthostPerDay:  500,
			MaxPerDay:           10000,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Load reads the file at path over the defaults and validates the result.
// An empty path means the embedded defaults. Unknown keys are errors.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, cfg.Validate()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("reading config: %w", err)
	}
	if err := Parse(&cfg, string(data)); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	// Relative paths in a config file are relative to the file, so that
	// `outbound serve -config /etc/outbound/outbound.toml` behaves the same
	// from any working directory.
	cfg.resolvePaths(filepath.Dir(path))
	return cfg, cfg.Validate()
}

// Parse decodes TOML text over cfg, refusing keys the schema does not know.
func Parse(cfg *Config, text string) error {
	md, err := toml.Decode(text, cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			if perr.LastKey != "" {
				return fmt.Errorf("line %d: %s: %s", perr.Position.Line, perr.LastKey, perr.Message)
			}
			return fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
		}
		return err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown key %s (see outbound.example.toml for every key)", strings.Join(keys, ", "))
	}
	// A file that configures the default route means a real upstream:
	// capture, the embedded default, must be asked for by name.
	if md.IsDefined("default_route") && !md.IsDefined("default_route", "mode") {
		cfg.DefaultRoute.Mode = "smtp"
	}
	return nil
}

func (c *Config) resolvePaths(base string) {
	for _, p := range []*string{&c.DataDir, &c.TLS.Cert, &c.TLS.Key, &c.ACME.CAFile, &c.DefaultRoute.PasswordFile, &c.DefaultRoute.CAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t\r\n") {
		bad("hostname", "must be a host name, got %q", c.Hostname)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls.cert", "tls.cert and tls.key must be set together")
	}
	c.validateACME(bad)
	c.validateStore(bad)
	listeners := []struct{ key, addr string }{{"submission.implicit_tls", c.Submission.ImplicitTLS}, {"submission.starttls", c.Submission.StartTLS},
		{"admin.listen", c.Admin.Listen}, {"provider_webhooks.listen", c.ProviderWebhooks.Listen}, {"autoconfig.listen", c.Autoconfig.Listen}, {"send_api.listen", c.SendAPI.Listen}}
	for i, l := range listeners {
		if l.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			bad(l.key, "must be host:port, got %q", l.addr)
			continue
		}
		for _, other := range listeners[:i] {
			if sameListenAddr(l.addr, other.addr) {
				bad(l.key, "%q is %s's address too: give each listener a port of its own", l.addr, other.key)
			}
		}
	}
	if c.Submission.ImplicitTLS == "" && c.Submission.StartTLS == "" {
		bad("submission", "at least one of implicit_tls and starttls must be set")
	}
	if c.Submission.MaxMessageBytes < 1024 {
		bad("submission.max_message_bytes", "must be at least 1024, got %d", c.Submission.MaxMessageBytes)
	}
	if c.Submission.MaxRecipients < 1 {
		bad("submission.max_recipients", "must be at least 1, got %d", c.Submission.MaxRecipients)
	}
	if c.Submission.BareLineEndings != "normalize" && c.Submission.BareLineEndings != "reject" {
		bad("submission.bare_line_endings", "must be \"normalize\" or \"reject\", got %q", c.Submission.BareLineEndings)
	}
	if c.Submission.MaxLineLength < 1000 {
		bad("submission.max_line_length", "must be at least 1000 (RFC 5321), got %d", c.Submission.MaxLineLength)
	}
	// Below two messages of the largest size, a message of that size
	// could never be accepted, and would get a temporary 452 for ever.
	if b := c.Submission.MaxBytesInFlight; b < 0 || (b > 0 && b < 2*c.Submission.MaxMessageBytes) {
		bad("submission.max_bytes_in_flight", "must be 0 (automatic) or at least twice max_message_bytes (%d), got %d", 2*c.Submission.MaxMessageBytes, b)
	}
	if c.Submission.MaxConnections < 0 || c.Submission.MaxConnectionsPerIP < 0 || c.Submission.AuthMaxFailures < 0 {
		bad("submission.max_connections", "max_connections, max_connections_per_ip and auth_max_failures must not be negative")
	}
	if c.Submission.MaxErrors < 0 {
		bad("submission.max_errors", "must not be negative (0 means no limit), got %d", c.Submission.MaxErrors)
	}
	if c.Submission.AuthMaxFailures > 0 && (c.Submission.AuthFailureWindow <= 0 || c.Submission.AuthLockout <= 0) {
		bad("submission.auth_lockout", "auth_failure_window and auth_lockout must be positive when auth_max_failures is set")
	}
	if c.Submission.ReadTimeout <= 0 || c.Submission.WriteTimeout <= 0 {
		bad("submission.read_timeout", "read_timeout and write_timeout must be positive")
	}
	switch c.DefaultRoute.Mode {
	case "smtp":
		if err := c.DefaultRoute.Validate(); err != nil {
			bad("default_route", "%v", err)
		}
	case "capture":
		c.validateCapture(bad)
	default:
		bad("default_route.mode", "must be \"smtp\" or \"capture\", got %q", c.DefaultRoute.Mode)
	}
	if c.Delivery.Workers < 1 {
		bad("delivery.workers", "must be at least 1, got %d", c.Delivery.Workers)
	}
	if c.Delivery.ConnectionsPerUpstream < 1 {
		bad("delivery.connections_per_upstream", "must be at least 1, got %d", c.Delivery.ConnectionsPerUpstream)
	}
	if c.Delivery.ConnectTimeout <= 0 || c.Delivery.CommandTimeout <= 0 {
		bad("delivery.connect_timeout", "connect_timeout and command_timeout must be positive")
	}
	if len(c.Retry.Schedule) == 0 {
		bad("retry.schedule", "must list at least one delay")
	}
	for i, d := range c.Retry.Schedule {
		if d <= 0 {
			bad("retry.schedule", "entry %d must be positive, got %q", i+1, d)
		}
	}
	if c.Retry.MaxLifetime <= 0 {
		bad("retry.max_lifetime", "must be positive")
	}
	if c.Retry.DelayWarning < 0 {
		bad("retry.delay_warning", "must not be negative")
	}
	if c.Web.SessionIdle <= 0 {
		bad("web.session_idle", "must be positive, got %q", c.Web.SessionIdle)
	}
	if err := dsnAddress(c.DSN.From); err != nil {
		bad("dsn.from", "%v", err)
	}
	if c.DSN.FallbackSender != "" {
		if err := dsnAddress(c.DSN.FallbackSender); err != nil {
			bad("dsn.fallback_sender", "%v (empty disables the fallback)", err)
		}
	}
	if s := c.Suppression.Scope; s != "user" && s != "relay" {
		bad("suppression.scope", `must be "user" or "relay", not %q`, s)
	}
	if c.Autoconfig.LinkLifetime.D() <= 0 {
		bad("autoconfig.link_lifetime", "must be positive, got %s", c.Autoconfig.LinkLifetime.D())
	}
	if c.ProviderWebhooks.MaxBodyBytes < 1024 {
		bad("provider_webhooks.max_body_bytes", "must be at least 1024, got %d", c.ProviderWebhooks.MaxBodyBytes)
	}
	if c.Suppression.Expire <= 0 {
		bad("suppression.expire", "must be positive")
	}
	if c.Retention.Content <= 0 {
		bad("retention.content", "must be positive")
	}
	if c.Retention.Stub < c.Retention.Content {
		bad("retention.stub", "must not be shorter than retention.content (%s)", c.Retention.Content)
	}
	l := c.Limits
	if l.MaxPerDay < 1 {
		bad("limits.max_per_day", "must be at least 1, got %d", l.MaxPerDay)
	}
	for key, v := range map[string]int{
		"limits.default_route_per_hour": l.DefaultRoutePerHour, "limits.default_route_per_day": l.DefaultRoutePerDay,
		"limits.own_smarthost_per_hour": l.OwnSmarthostPerHour, "limits.own_smarthost_per_day": l.OwnSmarthostPerDay,
	} {
		if v < 0 {
			bad(key, "must not be negative, got %d", v)
		} else if v > l.MaxPerDay {
			bad(key, "%d exceeds the ceiling limits.max_per_day = %d", v, l.MaxPerDay)
		}
	}
	for i, s := range c.DNS.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad("dns.servers", "entry %d must be host:port, got %q", i+1, s)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "must be \"text\" or \"json\", got %q", c.Log.Format)
	}
	return errors.Join(errs...)
}

// Capture reports whether the default route keeps mail instead of
// sending it.
func (c *Config) Capture() bool { return c.DefaultRoute.Mode == "capture" }

// validateCapture refuses the capture route where it looks like
// production ([acme], or a listener reachable from other hosts), unless
// allow_capture_in_production says so: a production relay must not
// silently keep mail it acknowledged as sent.
func (c *Config) validateCapture(bad func(key, format string, args ...any)) {
	if c.AllowCaptureInProduction {
		return
	}
	var keys []string
	if c.ACME.Enabled {
		keys = append(keys, "acme.enabled")
	}
	for _, l := range []struct{ key, addr string }{
		{"submission.implicit_tls", c.Submission.ImplicitTLS}, {"submission.starttls", c.Submission.StartTLS}, {"admin.listen", c.Admin.Listen},
	} {
		if l.addr != "" && !loopbackAddr(l.addr) {
			keys = append(keys, fmt.Sprintf("%s = %q", l.key, l.addr))
		}
	}
	if len(keys) > 0 {
		bad("default_route.mode", "\"capture\" keeps mail instead of sending it, and this looks like production (%s): "+
			"configure a real default_route (host, port, tls, username, password_file), or set allow_capture_in_production = true",
			strings.Join(keys, ", "))
	}
}

// loopbackAddr says whether host:port listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && netutil.IsLoopback(host)
}

// Validate checks an upstream's settings.
func (u Upstream) Validate() error {
	if u.Host == "" {
		return errors.New("host must be set")
	}
	if u.Port < 1 || u.Port > 65535 {
		return fmt.Errorf("port must be 1-65535, got %d", u.Port)
	}
	if err := netutil.ValidateTLSMode(u.TLSMode, u.Host); err != nil {
		return err
	}
	if u.Password != "" && u.PasswordFile != "" {
		return errors.New("set password or password_file, not both")
	}
	switch u.SPFPolicy {
	case "off", "warn", "enforce":
	default:
		return fmt.Errorf("spf_policy must be \"off\", \"warn\" or \"enforce\", got %q", u.SPFPolicy)
	}
	for _, ip := range u.SPFIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("spf_ips: %q is not an IP address", ip)
		}
	}
	return nil
}

// ResolvePassword returns the upstream's password, reading
// password_file when that is how it is given.
func (u Upstream) ResolvePassword() (string, error) {
	if u.PasswordFile == "" {
		return u.Password, nil
	}
	data, err := os.ReadFile(u.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("default_route.password_file: %w", err)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// dsnAddress checks a dsn address setting: a bare address such as
// "postmaster@{domain}" or "bounces@example.com".
func dsnAddress(s string) error {
	a := strings.ReplaceAll(s, "{domain}", "example.com")
	at := strings.LastIndexByte(a, '@')
	if at < 1 || at == len(a)-1 || strings.ContainsAny(a, " <>\t\r\n\"") || strings.Contains(strings.ReplaceAll(s, "{domain}", ""), "{") {
		return fmt.Errorf("%q is not an address such as postmaster@{domain} ({domain} is the original sender's domain)", s)
	}
	return nil
}

// validateACME checks [acme] when it is enabled: the names must be ones a
// CA can issue for, and the files and the ACME certificate exclude
// each other.
func (c *Config) validateACME(bad func(key, format string, args ...any)) {
	a := c.ACME
	if !a.Enabled {
		return
	}
	if c.TLS.Cert != "" || c.TLS.Key != "" {
		bad("acme.enabled", "[acme] and tls.cert/tls.key are mutually exclusive: remove tls.cert and tls.key to have the certificate obtained over ACME, or set acme.enabled = false to use the files")
	}
	if a.Directory == "" {
		bad("acme.directory", "must be the CA's ACME directory URL")
	} else if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("acme.directory", "must be an https:// URL, got %q", a.Directory)
	}
	key := "acme.http_listen"
	addr := a.HTTPListen
	switch a.Challenge {
	case "http-01":
	case "tls-alpn-01":
		key, addr = "acme.tls_listen", a.TLSListen
	default:
		bad("acme.challenge", "must be \"http-01\" or \"tls-alpn-01\", got %q", a.Challenge)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		bad(key, "must be host:port, got %q", addr)
	}
	for _, n := range c.ACMENames() {
		if n == "localhost" || net.ParseIP(n) != nil || !strings.Contains(n, ".") || strings.ContainsAny(n, " \t\r\n/:") {
			bad("acme.names", "%q is not a public DNS name a CA can issue for (set hostname or acme.names)", n)
		}
	}
}

// ACMENames are the names the ACME certificate covers: acme.names, or
// hostname when that is empty.
func (c *Config) ACMENames() []string {
	if len(c.ACME.Names) > 0 {
		return c.ACME.Names
	}
	return []string{c.Hostname}
}

// sameListenAddr reports whether two listen addresses would take the same
// port: the same port with the same host, or with a host that listens on
// every address (empty, 0.0.0.0, ::). Port 0 (any free port) never clashes.
func sameListenAddr(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

// validateStore checks [store] and submission.proxy_protocol_from.
func (c *Config) validateStore(bad func(key, format string, args ...any)) {
	switch c.Store.Kind {
	case "bbolt", "":
		if c.Store.DSN != "" || c.Store.DSNFile != "" {
			bad("store.dsn", "is only for kind = \"postgres\" (kind is %q)", c.Store.Kind)
		}
	case "postgres":
		if (c.Store.DSN == "") == (c.Store.DSNFile == "") {
			bad("store.dsn", "kind = \"postgres\" needs exactly one of dsn and dsn_file")
		}
	default:
		bad("store.kind", "must be \"bbolt\" or \"postgres\", got %q", c.Store.Kind)
	}
	if c.Store.CacheMaxStale < 0 {
		bad("store.cache_max_stale", "must not be negative")
	}
	for _, a := range c.Submission.ProxyProtocolFrom {
		if _, err := ParsePrefix(a); err != nil {
			bad("submission.proxy_protocol_from", "%v", err)
		}
	}
}

// ParsePrefix reads an address ("10.0.0.7", "::1") or a CIDR range
// ("10.0.0.0/8") as a prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// StoreDSN is the PostgreSQL connection string: dsn, or dsn_file's content.
func (c *Config) StoreDSN() (string, error) {
	if c.Store.DSNFile == "" {
		return c.Store.DSN, nil
	}
	b, err := os.ReadFile(c.Store.DSNFile)
	if err != nil {
		return "", fmt.Errorf("store.dsn_file: %w", err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("store.dsn_file: %s is empty", c.Store.DSNFile)
	}
	return dsn, nil
}

// NodeName is [store] node, or the machine's host name.
func (c *Config) NodeName() string {
	if c.Store.Node != "" {
		return c.Store.Node
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return c.Hostname
}
