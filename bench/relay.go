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

// relaySpec is what a relay process is started with.
type relaySpec struct {
	bin, upstream  string
	workers, conns int
	// dsn and node, when dsn is set: [store] kind = "postgres".
	dsn, node string
	// secretsKey, when set, is written to data_dir/secrets.key before the
	// start: every node of a cluster needs the first one's master key.
	secretsKey []byte
}

// startRelay writes a config that delivers to upstream (plain, loopback),
// starts the relay and waits until it listens.
func startRelay(spec relaySpec) (*relayProc, error) {
	bin, upstream, workers, conns := spec.bin, spec.upstream, spec.workers, spec.conns
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
	if spec.dsn != "" {
		cfg += fmt.Sprintf("\n[store]\nkind = \"postgres\"\ndsn = %q\nnode = %q\n", spec.dsn, spec.node)
	}
	if err := os.WriteFile(r.configPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if spec.secretsKey != nil {
		if err := os.MkdirAll(r.dataDir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(r.dataDir, "secrets.key"), spec.secretsKey, 0o600); err != nil {
			return nil, err
		}
	}
	if r.log, err = os.Create(filepath.Join(dir, "relay.log")); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "-config", r.configPath)
	cmd.Stdout, cmd.Stderr = r.log, r.log
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

// dial opens a submission connection to the relay's STARTTLS port and
// logs in.
func (r *relayProc) dial(user, password string) (*client, error) {
	return dialSubmission(r.startTLS, r.tlsConfig, user, password)
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
func (r *relayProc) cpuTime() time.Duration { return procCPU(r.cmd.Process.Pid, false) }

// userVisible waits until the relay's admin API knows user (a node of a
// cluster learns of a user added on another through the database's
// notifications).
func (r *relayProc) userVisible(name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(r.bin, "-config", r.configPath, "user", "show", name).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("user %s not visible on %s after 30s: %v: %s", name, r.configPath, err, bytes.TrimSpace(out))
		}
		time.Sleep(100 * time.Millisecond)
	}
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
