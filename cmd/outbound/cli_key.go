package main

import (
	"fmt"
	"io"

	"outbound/admin"
)

// keyCommand is `outbound key rotate`: the running server re-encrypts every
// smarthost password under a new master key (only it may open the database).
func (e *cliEnv) keyCommand(args []string) error {
	if len(args) != 1 || args[0] != "rotate" {
		return usagef("usage: outbound key rotate")
	}
	return fetch(e, false, (*admin.Client).RotateKey, func(w io.Writer, res *admin.KeyRotation) error {
		_, err := fmt.Fprintf(w, "master key rotated: %d smarthost passwords re-encrypted; data_dir/secrets.key holds the new key (back it up)\n", res.Reencrypted)
		return err
	})
}
