// Package pgtest starts throwaway PostgreSQL clusters for tests: the
// Debian binaries (/usr/lib/postgresql/*/bin, package postgresql), a temp
// dir, trust authentication for the user "outbound", loopback TCP on a free
// port, and fsync and full_page_writes switched off: the relay's durability
// is what the tests prove, not PostgreSQL's. synchronous_commit stays on, so
// a commit is written to the kernel before it is acknowledged and a test
// that kills the cluster (Kill, a crash of PostgreSQL, not of the machine)
// still finds everything that was committed.
//
// Start gives a test its own cluster; Shared gives every test of the
// process one cluster, in which each test makes its own database
// (NewDatabase). Without the binaries the test is skipped, naming
// scripts/install-test-deps.sh; with OUTBOUND_REQUIRE_POSTGRES=1 (CI) it
// fails instead.
//
// PostgreSQL refuses to run as root, so as root the cluster runs as the
// system user "postgres" (the process credentials of initdb and postgres
// are switched directly, as runuser would), in a temp dir chowned to it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"outbound/internal/testutil"
)

// readyTimeout bounds how long a cluster may take to accept connections
// (generous: initdb and recovery after Kill on a loaded CI machine).
const readyTimeout = 2 * time.Minute

// Server is a running (or stopped) test cluster.
type Server struct {
	bin  string // the directory of initdb, postgres, pg_ctl
	dir  string // temp dir: data/, the socket, postgres.log
	port int
	cred *syscall.Credential // the postgres user's, when we are root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited

	dbs atomic.Int64 // databases made by NewDatabase
}

// Start starts a cluster for t, removed (with its data) at t's cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := newServer(t, "outbound-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.logTail())
		}
		s.destroy()
	})
	return s
}

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Shared is one cluster for the whole test process, for packages with many
// tests: each test takes its own database with NewDatabase. It is never
// stopped by a test; it exits with the test process (a parent-death signal)
// and its temp dir is removed by the next process that calls Shared. Tests
// that Stop or Kill a cluster must Start their own.
func Shared(t testing.TB) *Server {
	t.Helper()
	requireBin(t)
	shared.once.Do(func() {
		removeStaleShared()
		shared.s, shared.err = newServer(t, fmt.Sprintf("outbound-pgtest-shared-%d-", os.Getpid()))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	if shared.s == nil {
		t.Fatal("pgtest: the shared cluster failed to start in an earlier test")
	}
	return shared.s
}

// newServer finds the binaries (skipping t when there are none), makes the
// cluster and starts it.
func newServer(t testing.TB, prefix string) (*Server, error) {
	t.Helper()
	bin := requireBin(t)
	_, portStr, _ := net.SplitHostPort(testutil.FreePort(t))
	port, _ := strconv.Atoi(portStr)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, port: port}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := s.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// The first start may take another port: FreePort's port can be taken
	// by another test process before the postmaster binds it.
	err = s.start(time.Second)
	for try := 0; err != nil && s.exited() && try < 3; try++ {
		_, portStr, _ := net.SplitHostPort(testutil.FreePort(t))
		s.port, _ = strconv.Atoi(portStr)
		err = s.start(time.Second)
	}
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, s.logTail())
		s.destroy()
		return nil, err
	}
	return s, nil
}

// requireBin is findBin's answer, or skips t (fails it when
// OUTBOUND_REQUIRE_POSTGRES=1) when there is none.
func requireBin(t testing.TB) string {
	t.Helper()
	bin := findBin()
	if bin == "" {
		msg := "pgtest: no PostgreSQL binaries in /usr/lib/postgresql/*/bin; run scripts/install-test-deps.sh"
		if os.Getenv("OUTBOUND_REQUIRE_POSTGRES") == "1" {
			t.Fatal(msg + " (OUTBOUND_REQUIRE_POSTGRES=1)")
		}
		t.Skip(msg)
	}
	return bin
}

// findBin is the newest /usr/lib/postgresql/N/bin with initdb, or "".
func findBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestV := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(d))))
		if err == nil && v > bestV {
			best, bestV = filepath.Dir(d), v
		}
	}
	return best
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the system user postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

// command is a PostgreSQL binary run as the cluster's user, its output
// appended to the log.
func (s *Server) command(name string, args ...string) (*exec.Cmd, error) {
	log, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir // PostgreSQL complains about a cwd it cannot read (root's)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd, nil
}

func (s *Server) run(name string, args ...string) error {
	cmd, err := s.command(name, args...)
	if err != nil {
		return err
	}
	defer cmd.Stdout.(*os.File).Close()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", name, err, s.logTail())
	}
	return nil
}

func (s *Server) initdb() error {
	return s.run("initdb", "-D", s.dataDir(), "-A", "trust", "-U", "outbound",
		"--no-sync", "-E", "UTF8", "--no-locale", "--no-instructions")
}

// exited says whether the postmaster has exited (or never ran).
func (s *Server) exited() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// start runs the postmaster and waits until it accepts connections. A
// postmaster that exits at once is started again for retryExit: after
// Kill, the old one's backends may hold its shared memory for a moment.
func (s *Server) start(retryExit time.Duration) error {
	deadline := time.Now().Add(readyTimeout)
	retryUntil := time.Now().Add(retryExit)
	for {
		done, err := s.launch()
		if err != nil {
			return err
		}
		err = s.waitReady(deadline, done)
		if err == nil {
			return nil
		}
		select {
		case <-done:
		default:
			return err // running but not answering
		}
		if time.Now().After(retryUntil) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *Server) launch() (chan struct{}, error) {
	cmd, err := s.command("postgres", "-D", s.dataDir(), "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off")
	if err != nil {
		return nil, err
	}
	// The postmaster exits with the test process, also when it dies
	// without cleanup (Go sets this after switching credentials).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	log := cmd.Stdout.(*os.File)
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("pgtest: postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return done, nil
}

func (s *Server) waitReady(deadline time.Time, done chan struct{}) error {
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		last = err
		select {
		case <-done:
			return fmt.Errorf("pgtest: postgres exited before accepting connections")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("pgtest: postgres did not accept connections within %v: %w", readyTimeout, last)
}

// DSN is the connection string of database db (trust authentication, no
// password, loopback TCP).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://outbound@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port is the cluster's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

// NewDatabase creates an empty database with a name of its own (after t's
// name, for reading logs) and returns its DSN. It is left in the cluster.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", s.dbs.Add(1), name)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.DSN(name)
}

// Stop shuts the cluster down (fast: clients are disconnected) and keeps
// its data for Start.
func (s *Server) Stop() error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := s.run("pg_ctl", "stop", "-D", s.dataDir(), "-m", "fast", "-w", "-t", "120"); err != nil {
		return err
	}
	<-done
	return nil
}

// Start starts a stopped or killed cluster again, on the same port and
// data, and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		default:
			return errors.New("pgtest: Start: the cluster is running")
		}
	}
	return s.start(readyTimeout)
}

// Kill ends the postmaster with SIGKILL, as a crash would; Start recovers.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// destroy stops the cluster (immediately: nothing in it is kept) and
// removes its dir.
func (s *Server) destroy() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd != nil {
		select {
		case <-done:
		default:
			cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
	}
	os.RemoveAll(s.dir)
}

// logTail is the end of the cluster's log, for a failing test.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	return "postgres log (" + s.logPath() + "):\n" + string(b)
}

// removeStaleShared removes the dirs Shared left behind in earlier test
// processes that have exited (their postmaster has died with them).
func removeStaleShared() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "outbound-pgtest-shared-*"))
	sort.Strings(dirs)
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), "-")
		if len(f) < 4 {
			continue
		}
		pid, err := strconv.Atoi(f[3])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}
