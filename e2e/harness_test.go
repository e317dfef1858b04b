// Package e2e runs the built outbound binary against real clients (Go's
// go-smtp, Python's smtplib, swaks) and a real recording upstream, one
// scenario per test.
//
// The vocabulary shared by every scenario lives in this file:
//
//   - TestMain builds ./cmd/outbound once, and when the tests run with
//     -race also a race-enabled copy that runs `serve`, so that the relay's
//     own data races fail the suite too.
//   - newRelay prepares a relay in t.TempDir(): free loopback ports, a test
//     CA whose certificate for "localhost" and 127.0.0.1 the listeners
//     present, and a config (r.cfg) a test may change before r.start().
//     r.kill() (SIGKILL), r.stop() (SIGTERM, must exit 0) and r.start()
//     again reuse the same data_dir. The relay's log is printed when the test
//     fails, and a data race or panic in it fails the test.
//   - r.cli runs a CLI command against the running relay; r.addUser is
//     "user add" with the password on stdin.
//   - r.dial / r.login / sendMessage submit with go-smtp, verifying the
//     relay's certificate against the test CA.
//
// Run one scenario with: go test ./e2e -run TestCrashLosesNothing -v
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/internal/testutil"
)

// serveBin runs `outbound serve`: built with -race when the tests run with
// -race, so that a data race in the relay fails the scenario. cliBin runs
// the CLI and the config refusals, which exercise no concurrency: it is
// built without -race, because a race binary costs a second or more per
// invocation (the race runtime's exit delay, and auth's package-level bcrypt
// hash run under the race detector). repoRoot is the module root.
var serveBin, cliBin, repoRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var err error
	if repoRoot, err = findRepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "outbound-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cliBin = filepath.Join(dir, "outbound")
	if err := goBuild(cliBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	serveBin = cliBin
	if raceEnabled {
		serveBin = filepath.Join(dir, "outbound-race")
		if err := goBuild(serveBin, "-race"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	return m.Run()
}

// goBuild builds ./cmd/outbound into out.
func goBuild(out string, flags ...string) error {
	args := append(append([]string{"build", "-o", out}, flags...), "./cmd/outbound")
	build := exec.Command("go", args...)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// findRepoRoot walks up from the package directory to the go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the e2e directory")
		}
		dir = parent
	}
}

// tomlConfig is a relay config file as section → key → raw TOML value; the
// section "" is the top level. Values are written verbatim, so strings need
// their quotes (use q).
type tomlConfig map[string]map[string]string

func (c tomlConfig) set(section, key, value string) {
	if c[section] == nil {
		c[section] = map[string]string{}
	}
	c[section][key] = value
}

func (c tomlConfig) String() string {
	var b strings.Builder
	sections := make([]string, 0, len(c))
	for s := range c {
		sections = append(sections, s)
	}
	sort.Strings(sections) // "" (the top level) first
	for _, s := range sections {
		if s != "" {
			fmt.Fprintf(&b, "\n[%s]\n", s)
		}
		keys := make([]string, 0, len(c[s]))
		for k := range c[s] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s = %s\n", k, c[s][k])
		}
	}
	return b.String()
}

// q quotes a TOML basic string.
func q(s string) string { return strconv.Quote(s) }

// relay is one outbound server under test, run as a subprocess.
type relay struct {
	t   *testing.T
	dir string
	// cfg is written to ConfigPath by start; change it before start.
	cfg        tomlConfig
	ConfigPath string
	DataDir    string

	ImplicitAddr, StartTLSAddr, AdminAddr string

	// CA issued the listeners' certificate; CAFile is its PEM.
	CA     *testutil.CA
	CAFile string

	// noRace runs serve from the binary built without -race, for
	// scenarios that measure memory.
	noRace bool

	logPath string
	starts  int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
}

// newRelay prepares (but does not start) a relay whose default route
// points at upstreamAddr without TLS; see useUpstream for TLS.
func newRelay(t *testing.T, upstreamAddr string) *relay {
	t.Helper()
	dir := t.TempDir()
	r := &relay{
		t:            t,
		dir:          dir,
		cfg:          tomlConfig{},
		ConfigPath:   filepath.Join(dir, "outbound.toml"),
		DataDir:      filepath.Join(dir, "data"),
		ImplicitAddr: testutil.FreePort(t),
		StartTLSAddr: testutil.FreePort(t),
		AdminAddr:    testutil.FreePort(t),
		CA:           testutil.NewCA(t),
		logPath:      filepath.Join(dir, "relay.log"),
	}
	r.CAFile = testutil.WriteFile(t, dir, "ca.pem", r.CA.PEM)
	certPEM, keyPEM := r.CA.IssuePEM(t, "localhost", "127.0.0.1")
	certFile := testutil.WriteFile(t, dir, "relay-cert.pem", certPEM)
	keyFile := testutil.WriteFile(t, dir, "relay-key.pem", keyPEM)

	c := r.cfg
	c.set("", "hostname", q("relay.e2e.test"))
	c.set("", "data_dir", q(r.DataDir))
	c.set("tls", "cert", q(certFile))
	c.set("tls", "key", q(keyFile))
	c.set("submission", "implicit_tls", q(r.ImplicitAddr))
	c.set("submission", "starttls", q(r.StartTLSAddr))
	c.set("admin", "listen", q(r.AdminAddr))
	r.useUpstream(upstreamAddr, "none")
	c.set("delivery", "workers", "4")
	c.set("delivery", "connections_per_upstream", "4")
	c.set("delivery", "connect_timeout", q("2s"))
	c.set("delivery", "command_timeout", q("10s"))
	c.set("delivery", "idle_connection", q("5s"))
	c.set("retry", "schedule", `["1s"]`)
	// The scenarios send more than the default route's 2 per hour.
	c.set("limits", "default_route_per_hour", "10000")
	c.set("limits", "default_route_per_day", "10000")
	c.set("log", "level", q("debug"))
	c.set("log", "format", q("text"))
	// Scenarios try wrong passwords on purpose, all from 127.0.0.1.
	c.set("submission", "auth_max_failures", "1000")

	t.Cleanup(r.cleanup)
	return r
}

// useUpstream points the default route at addr with the given TLS mode
// ("none", "starttls", "implicit"); with TLS the upstream must present a
// certificate from r.CA (see upstreamTLS), which the route trusts via ca_file.
func (r *relay) useUpstream(addr, mode string) {
	r.t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cfg.set("default_route", "host", q(host))
	r.cfg.set("default_route", "port", port)
	r.cfg.set("default_route", "tls", q(mode))
	if mode != "none" {
		r.cfg.set("default_route", "ca_file", q(r.CAFile))
	}
}

// upstreamTLS is a server TLS config for an upstream on 127.0.0.1 with a
// certificate from r.CA.
func (r *relay) upstreamTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{r.CA.Issue(r.t, "127.0.0.1", "localhost")}}
}

// start writes the config, starts `outbound serve` and waits until its
// three listeners accept connections.
func (r *relay) start() {
	r.t.Helper()
	if r.running() {
		r.t.Fatal("relay already running")
	}
	if err := os.WriteFile(r.ConfigPath, []byte(r.cfg.String()), 0o600); err != nil {
		r.t.Fatal(err)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	r.starts++
	fmt.Fprintf(logf, "===== e2e: start #%d at %s =====\n", r.starts, time.Now().Format(time.StampMilli))

	bin := serveBin
	if r.noRace {
		bin = cliBin
	}
	cmd := exec.Command(bin, "serve", "-config", r.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Keep reporting races after the first, and do not wait a second at exit.
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0 atexit_sleep_ms=50 "+os.Getenv("GORACE"))
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(r.exited)

	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{r.ImplicitAddr, r.StartTLSAddr, r.AdminAddr} {
		for {
			select {
			case <-r.exited:
				r.t.Fatalf("relay exited while starting (%s)", cmd.ProcessState)
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("relay not listening on %s after 30s: %v", addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A port that answers may be somebody else's: the relay is up once its
	// own admin API answers /healthz (served after the submission
	// listeners are bound) and it is still running.
	for !r.healthy() {
		select {
		case <-r.exited:
			r.t.Fatalf("relay exited while starting (%s)", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("relay's admin API at %s did not answer /healthz within 30s", r.AdminAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// healthy reports whether the admin API answers GET /healthz with 200.
func (r *relay) healthy() bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + r.AdminAddr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (r *relay) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// kill ends the relay with SIGKILL: a crash, nothing flushed or closed.
func (r *relay) kill() {
	r.t.Helper()
	if !r.running() {
		r.t.Fatal("kill: relay not running")
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// stop ends the relay with SIGTERM and requires a clean exit (status 0)
// within 20 seconds.
func (r *relay) stop() {
	r.t.Helper()
	if !r.running() {
		r.t.Fatal("stop: relay not running")
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.exited
		r.t.Fatal("relay did not exit within 20s of SIGTERM")
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		r.t.Errorf("relay exited with status %d after SIGTERM, want 0", code)
	}
}

// log returns everything the relay wrote to stdout and stderr, all runs.
func (r *relay) log() string {
	data, _ := os.ReadFile(r.logPath)
	return string(data)
}

func (r *relay) cleanup() {
	if r.running() {
		r.stop()
	}
	log := r.log()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(log, bad) {
			r.t.Errorf("the relay's log contains %q", bad)
		}
	}
	if r.t.Failed() {
		r.t.Logf("relay config %s:\n%s", r.ConfigPath, r.cfg)
		r.t.Logf("relay log (%d starts):\n%s", r.starts, log)
	}
}

// cliResult is what one CLI invocation printed and its exit status.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

func (c cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", c.Code, c.Stdout, c.Stderr)
}

// cli runs `outbound -config CONFIG args...` with stdin (not a terminal).
func (r *relay) cli(stdin string, args ...string) cliResult {
	r.t.Helper()
	return runBinary(r.t, stdin, append([]string{"-config", r.ConfigPath}, args...)...)
}

// runBinary runs the (non-race) outbound binary with a 60-second limit.
func runBinary(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		res.Code = exit.ExitCode()
	default:
		t.Fatalf("outbound %s: %v\n%s", strings.Join(args, " "), err, res)
	}
	return res
}

// addUser adds a user through the CLI, the password on stdin.
func (r *relay) addUser(name, password string, allowFrom ...string) {
	r.t.Helper()
	args := []string{"user", "add", name}
	for _, a := range allowFrom {
		args = append(args, "--allow-from", a)
	}
	if res := r.cli(password+"\n", args...); res.Code != 0 {
		r.t.Fatalf("user add %s: %s", name, res)
	}
}

// clientTLS verifies the relay's certificate for "localhost" against r.CA.
func (r *relay) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: r.CA.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// dial connects a go-smtp client to the implicit-TLS listener or, with
// implicit false, to the STARTTLS listener and upgrades.
func (r *relay) dial(implicit bool) (*smtp.Client, error) {
	var c *smtp.Client
	var err error
	if implicit {
		c, err = smtp.DialTLS(r.ImplicitAddr, r.clientTLS())
	} else {
		c, err = smtp.DialStartTLS(r.StartTLSAddr, r.clientTLS())
	}
	if err != nil {
		return nil, err
	}
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	return c, nil
}

// login dials (see dial) and authenticates with AUTH PLAIN.
func (r *relay) login(implicit bool, user, password string) (*smtp.Client, error) {
	c, err := r.dial(implicit)
	if err != nil {
		return nil, err
	}
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// mustLogin requires that user logs in with password (STARTTLS, AUTH PLAIN).
func (r *relay) mustLogin(user, password string) {
	r.t.Helper()
	c, err := r.login(false, user, password)
	if err != nil {
		r.t.Fatalf("login %s: %v", user, err)
	}
	c.Quit()
}

// mustFailLogin requires a 535 for user with password.
func (r *relay) mustFailLogin(user, password string) {
	r.t.Helper()
	c, err := r.login(false, user, password)
	if err == nil {
		c.Quit()
		r.t.Fatalf("login %s with password %q succeeded, want 535", user, password)
	}
	if smtpCode(err) != 535 {
		r.t.Fatalf("login %s: %v, want 535", user, err)
	}
}

var queuedRE = regexp.MustCompile(`queued as (\S+)`)

// sendMessage runs one mail transaction on c and returns the queue ID from
// the relay's "250 2.0.0 Ok: queued as ID".
func sendMessage(c *smtp.Client, from string, to []string, msg []byte) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	m := queuedRE.FindStringSubmatch(resp.StatusText)
	if m == nil {
		return "", fmt.Errorf("250 reply without a queue ID: %q", resp.StatusText)
	}
	return m[1], nil
}

// message builds a small RFC 5322 message with CRLF line endings.
func message(from, to, subject, body string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n") + "\r\n")
}

// smtpCode returns the SMTP reply code in err, or 0.
func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// parsed is a message the upstream received, parsed.
type parsed struct {
	Subject string // decoded (RFC 2047)
	Header  mail.Header
	Body    []byte // raw, after the header
}

func parseReceived(t *testing.T, data []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("upstream received an unparseable message: %v\n%s", err, data)
	}
	body, _ := io.ReadAll(m.Body)
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("undecodable Subject %q: %v", m.Header.Get("Subject"), err)
	}
	return parsed{Subject: subject, Header: m.Header, Body: body}
}

// bySubject indexes received messages by decoded subject.
func bySubject(t *testing.T, msgs []testutil.Received) map[string][]parsed {
	t.Helper()
	out := map[string][]parsed{}
	for _, m := range msgs {
		p := parseReceived(t, m.Data)
		out[p.Subject] = append(out[p.Subject], p)
	}
	return out
}

// waitUntil polls cond every 20 ms until it holds, failing after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
