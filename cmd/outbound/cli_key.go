package main

import (
	"fmt"
	"io"

	"outbound/admin"
)

// keyCommand is `outbound key rotate`: the running server re-seals every
// secret under a new master key (only it may open the database): smarthost
// passwords and provider webhook secrets, DKIM keys, webhook endpoints'
// signing secrets.
func (e *cliEnv) keyCommand(args []string) error {
	if len(args) != 1 || args[0] != "rotate" {
		return usagef("usage: outbound key rotate")
	}
	return fetch(e, false, (*admin.Client).RotateKey, func(w io.Writer, res *admin.KeyRotation) error {
		_, err := fmt.Fprintf(w, "master key rotated: %d secrets re-encrypted (%d smarthost passwords, %d smarthosts' provider webhook secrets, "+
			"%d DKIM keys, %d webhook endpoint secrets); data_dir/secrets.key holds the new key (back it up)\n",
			res.Reencrypted, res.SmarthostPasswords, res.ProviderWebhookSecrets, res.DKIMKeys, res.WebhookEndpointSecrets)
		return err
	})
}
