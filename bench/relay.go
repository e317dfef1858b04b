package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perUserLimit is the most messages one user may send in the benchmark:
// limits.max_per_day's default ceiling, which the config does not raise.
const perUserLimit = 10000

// relayProc is one `outbound serve` process with a fresh data directory.
type relayProc struct {
	bin        string
	dir        string
	configPath string
	dataDir    string
	startTLS   string
	admin      string
	cmd        *exec.Cmd
	exited     chan struct{}
	log        *os.File
	tlsConfig  *tls.Config
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startRelay writes a config that delivers to upstream (plain, loopback),
// starts the relay and waits until it listens.
func startRelay(bin, upstream string, workers, conns int, extraEnv []string) (*relayProc, error) {
	dir, err := os.MkdirTemp("", "outbound-bench-")
	if err != nil {
		return nil, err
	}
	r := &relayProc{bin: bin, dir: dir, configPath: filepath.Join(dir, "outbound.toml"), dataDir: filepath.Join(dir, "data")}
	var ports [3]string
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	implicit := ports[0]
	r.startTLS, r.admin = ports[1], ports[2]
	host, port, _ := net.SplitHostPort(upstream)
	cfg := fmt.Sprintf(`hostname = "localhost"
data_dir = %q

[submission]
implicit_tls = %q
starttls = %q
# Every bench client comes from 127.0.0.1: the per-address cap (default
# 100) would refuse the -idle connections.
max_connections_per_ip = 0

[admin]
listen = %q

[default_route]
host = %q
port = %s
tls = "none"
spf_policy = "off"

[delivery]
workers = %d
connections_per_upstream = %d

[limits]
default_route_per_hour = %d
default_route_per_day = %d
max_per_day = %d

[log]
level = "warn"
`, r.dataDir, implicit, r.startTLS, r.admin, host, port, workers, conns, perUserLimit, perUserLimit, perUserLimit)
	if err := os.WriteFile(r.configPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if r.log, err = os.Create(filepath.Join(dir, "relay.log")); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "-config", r.configPath)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(r.exited) }()

	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{implicit, r.startTLS, r.admin} {
		for {
			select {
			case <-r.exited:
				return r, fmt.Errorf("relay exited while starting (%s); log: %s", cmd.ProcessState, r.logTail())
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return r, fmt.Errorf("relay not listening on %s after 30s: %v", addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Trust exactly the certificate the relay generated in data_dir/tls.
	pemBytes, err := os.ReadFile(filepath.Join(r.dataDir, "tls", "cert.pem"))
	if err != nil {
		return r, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return r, fmt.Errorf("no certificate in %s", filepath.Join(r.dataDir, "tls", "cert.pem"))
	}
	r.tlsConfig = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	return r, nil
}

// addUser adds a user through the CLI with the password on stdin.
func (r *relayProc) addUser(name, password, allowFrom string) error {
	cmd := exec.Command(r.bin, "-config", r.configPath, "user", "add", name, "--allow-from", allowFrom)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("user add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// procStatus returns a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func (r *relayProc) procStatus(field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// cpuTime is the relay's user+system CPU time so far.
func (r *relayProc) cpuTime() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" that ends the command name; utime and stime
	// are fields 14 and 15 (11 and 12 after it).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func (r *relayProc) logTail() string {
	data, _ := os.ReadFile(filepath.Join(r.dir, "relay.log"))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// stop ends the relay (SIGTERM, then SIGKILL after 10s) and removes its
// directory unless keep is set.
func (r *relayProc) stop(keep bool) {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-r.exited
		}
	}
	if r.log != nil {
		r.log.Close()
	}
	if !keep {
		os.RemoveAll(r.dir)
	}
}
