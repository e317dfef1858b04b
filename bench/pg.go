package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgServer is a throwaway PostgreSQL cluster for -pg: the Debian binaries
// (/usr/lib/postgresql/*/bin), a temp dir, trust authentication for the
// user "outbound", loopback TCP on a free port. Unlike internal/pgtest
// (whose clusters run with fsync off, for tests), it keeps PostgreSQL's
// defaults, fsync and synchronous_commit on: a commit is on disk before the
// relay's 250, as the bbolt figures' are. As root it runs as the system user
// "postgres" (PostgreSQL refuses root), in a dir chowned to it.
type pgServer struct {
	bin, dir string
	port     int
	cred     *syscall.Credential
	cmd      *exec.Cmd
	exited   chan struct{}
	dbs      int
}

// startPostgres makes and starts a cluster, waiting until it answers.
func startPostgres() (*pgServer, error) {
	bin := pgBin()
	if bin == "" {
		return nil, fmt.Errorf("-pg: no PostgreSQL binaries in /usr/lib/postgresql/*/bin (scripts/install-test-deps.sh installs them)")
	}
	dir, err := os.MkdirTemp("", "outbound-bench-pg-")
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			s.remove()
			return nil, fmt.Errorf("-pg as root needs the system user postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			s.remove()
			return nil, err
		}
	}
	// --no-sync only spares initdb's own fsyncs of the empty cluster; the
	// server below runs with fsync on.
	if out, err := s.command("initdb", "-D", s.dataDir(), "-A", "trust", "-U", "outbound",
		"--no-sync", "-E", "UTF8", "--no-locale").CombinedOutput(); err != nil {
		s.remove()
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	if err := s.start(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// pgBin is the newest /usr/lib/postgresql/N/bin with initdb, or "".
func pgBin() string {
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

func (s *pgServer) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir // PostgreSQL complains about a cwd it cannot read (root's)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// start runs the postmaster on a free port (another one if that port was
// taken meanwhile) and waits until it accepts connections.
func (s *pgServer) start() error {
	var lastErr error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			return err
		}
		_, p, _ := net.SplitHostPort(addr)
		s.port, _ = strconv.Atoi(p)
		log, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		s.cmd = s.command("postgres", "-D", s.dataDir(), "-p", p, "-k", s.dir,
			"-c", "listen_addresses=127.0.0.1")
		s.cmd.Stdout, s.cmd.Stderr = log, log
		s.cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM // gone with the bench
		if err := s.cmd.Start(); err != nil {
			log.Close()
			return fmt.Errorf("postgres: %w", err)
		}
		s.exited = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); log.Close(); close(done) }(s.cmd, s.exited)
		if lastErr = s.waitReady(); lastErr == nil {
			return nil
		}
		select {
		case <-s.exited: // most likely the port: try another
		default:
			return lastErr
		}
	}
	return fmt.Errorf("%w; log: %s", lastErr, s.logTail())
}

func (s *pgServer) waitReady() error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited while starting")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not answering after a minute: %w", err)
		}
	}
}

func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://outbound@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// newDatabase creates an empty database for one run and returns its DSN.
func (s *pgServer) newDatabase() (string, error) {
	s.dbs++
	name := fmt.Sprintf("bench%d", s.dbs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.dsn(name), nil
}

// cpuTime is the CPU time of the postmaster and every backend so far: its
// own, its exited children's (cutime, cstime) and its live children's. It
// is 0 without -pg (s nil).
func (s *pgServer) cpuTime() time.Duration {
	if s == nil {
		return 0
	}
	pid := s.cmd.Process.Pid
	total := procCPU(pid, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if f := procStat(child); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			total += procCPU(child, false)
		}
	}
	return total
}

// procStat is the fields of /proc/PID/stat after the command name: f[0] is
// the state, f[1] the parent, f[11] to f[14] utime, stime, cutime, cstime.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// procCPU is a process's utime+stime, with its waited-for children's
// (cutime+cstime) when children is set.
func procCPU(pid int, children bool) time.Duration {
	f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	last := 12
	if children {
		last = 14
	}
	var ticks int64
	for i := 11; i <= last; i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

func (s *pgServer) logTail() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// stop shuts the cluster down immediately (nothing in it is kept) and
// removes its dir.
func (s *pgServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	s.remove()
}

func (s *pgServer) remove() { os.RemoveAll(s.dir) }

// cpuStat is the machine's CPU time so far (/proc/stat's "cpu" line, every
// core): busy (user, nice, system, irq, softirq), waiting for I/O, stolen by
// the hypervisor.
type cpuStat struct{ busy, iowait, steal time.Duration }

func machineCPU() cpuStat {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 {
		return cpuStat{}
	}
	v := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * time.Second / 100
	}
	return cpuStat{busy: v(1) + v(2) + v(3) + v(6) + v(7), iowait: v(5), steal: v(8)}
}

// pgStats are PostgreSQL's counters of what the database did: commits in
// the run's database, WAL fsyncs and bytes (cluster-wide), and rows
// written per table.
type pgStats struct {
	commits, walSyncs, walBytes int64
	rows                        map[string]int64
}

// stats reads the counters of database dsn. Backends report theirs at
// most once a second, so the caller waits a moment after the load.
func (s *pgServer) stats(dsn string) (pgStats, error) {
	st := pgStats{rows: map[string]int64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return st, err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `select xact_commit, (select wal_sync from pg_stat_wal), (select wal_bytes::bigint from pg_stat_wal)
		from pg_stat_database where datname = current_database()`).Scan(&st.commits, &st.walSyncs, &st.walBytes); err != nil {
		return st, err
	}
	rows, err := conn.Query(ctx, "select relname, n_tup_ins + n_tup_upd + n_tup_del from pg_stat_user_tables")
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return st, err
		}
		st.rows[name] = n
	}
	return st, rows.Err()
}

// perMsg describes the counters' growth from s0 to s per message: commits,
// WAL fsyncs and bytes, and the rows written to each table that had any.
func (s pgStats) perMsg(s0 pgStats, msgs int) string {
	m := float64(max(1, msgs))
	out := fmt.Sprintf("pg_commits_per_msg=%.2f pg_wal_syncs_per_msg=%.2f pg_wal_bytes_per_msg=%.0f",
		float64(s.commits-s0.commits)/m, float64(s.walSyncs-s0.walSyncs)/m, float64(s.walBytes-s0.walBytes)/m)
	names := make([]string, 0, len(s.rows))
	for name := range s.rows {
		names = append(names, name)
	}
	sort.Strings(names)
	var parts []string
	for _, name := range names {
		if d := s.rows[name] - s0.rows[name]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s:%.2f", name, float64(d)/m))
		}
	}
	return out + " pg_rows_per_msg=" + strings.Join(parts, ",")
}
