//go:build !linux

package e2e

import "os/exec"

// setDeathSignal is a no-op where the kernel cannot tie the relay's life to
// the test binary's; the tests' cleanups still stop it.
func setDeathSignal(cmd *exec.Cmd) {}
