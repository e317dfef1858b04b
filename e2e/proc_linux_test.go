package e2e

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills the relay if the test binary dies first (a panic or a
// -timeout), so that no orphan keeps the ports or the data_dir lock.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
