package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"outbound/autoconfig"
)

// autoconfigCommand runs `outbound autoconfig link USER`: a URL that
// downloads USER's Apple profile without signing in, for a person who has
// no web interface account. The token is signed with a key derived from
// the admin token (so only who can read it can make links, and rotating
// it revokes them) and expires after autoconfig.link_lifetime.
func (e *cliEnv) autoconfigCommand(args []string) error {
	const usage = "usage: outbound autoconfig link USER [--base URL]"
	if len(args) == 0 || args[0] != "link" {
		return usagef(usage)
	}
	fs := newFlags("autoconfig link")
	base := fs.String("base", "", "the URL the link starts with (default: https://hostname, with the autoconfig or admin listener's port)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(usage)
	}
	cfg, err := loadConfig(e.configPath)
	if err != nil {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	// The user must exist now; the link checks again when it is used.
	if _, err := c.User(pos[0]); err != nil {
		return err
	}
	token, err := readToken(cfg.DataDir)
	if err != nil {
		return err
	}
	if *base == "" {
		listen := cfg.Autoconfig.Listen
		if listen == "" {
			listen = cfg.Admin.Listen
		}
		*base = "https://" + cfg.Hostname
		// A loopback listener sits behind a proxy on 443.
		if _, port, err := net.SplitHostPort(listen); err == nil && adminServesTLS(listen) && port != "443" {
			*base = "https://" + net.JoinHostPort(cfg.Hostname, port)
		}
	}
	expires := time.Now().Add(cfg.Autoconfig.LinkLifetime.D())
	tok := (&autoconfig.Tokens{Key: autoconfig.TokenKey(token)}).Sign(pos[0], expires)
	fmt.Fprintf(e.stdout, "%s%s?token=%s\n", strings.TrimSuffix(*base, "/"), autoconfig.ProfilePath, url.QueryEscape(tok))
	fmt.Fprintf(e.stderr, "valid until %s; open it on the Apple device and install the profile\n", expires.UTC().Format(time.RFC3339))
	return nil
}
