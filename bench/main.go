// Command bench measures the relay end to end on this machine: it starts
// the built `outbound serve` binary with a fresh data directory, points its
// default route at a discarding go-smtp sink on loopback (in this process),
// adds users through the CLI, and submits N messages of a given size over C
// concurrent STARTTLS + AUTH PLAIN connections, reused with RSET between
// messages (or, with -per-connection, one new connection per message).
//
// It prints one line per run: accepted msgs/s (submission side), delivered
// msgs/s end to end (until the sink has counted every accepted message),
// p50/p90/p99 submission latency (MAIL sent to the 250 after the final dot),
// the relay's peak resident memory (VmHWM) and its CPU time per message.
// Reused connections log in before the clock starts; how long those C
// concurrent logins took is printed as login_phase.
// With -idle K it holds K authenticated, idle connections open during the
// run.
//
// With -pg the shared state is in PostgreSQL ([store] kind = "postgres"): a
// throwaway cluster started by the bench with PostgreSQL's defaults (fsync
// on), a fresh database per run. -nodes N (needs -pg) starts N relays on it,
// each with its own data_dir, ports and node name and the first one's
// secrets.key, all delivering to the one sink; users are added through the
// first node's CLI and the C clients are spread round-robin over the nodes'
// STARTTLS ports. The line then also gives each node's accepted msgs/s (its
// messages over the cluster's whole submission window) and the CPU time per
// message of the relays together, of PostgreSQL (postmaster and backends)
// and of this process (clients and sink). With -matrix it runs C = 1, 10, 50 × 4 KiB and 256 KiB and prints a
// markdown table. Everything listens on 127.0.0.1 and every run stops by
// itself after N messages.
//
//	go run ./bench -n 2000 -c 10 -size 4096
//	go run ./bench -per-connection -n 1000 -c 10
//	go run ./bench -idle 500 -c 50
//	go run ./bench -matrix
//	go run ./bench -perf perf.data -n 10000 -c 10   # perf record the relay under load
//	go run ./bench -pg -nodes 3 -n 3000 -c 50        # three nodes sharing PostgreSQL
//
// Figures are reported, never asserted; see BENCH.md for the results.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	bin           string
	n, c, size    int
	perConnection bool
	idle          int
	workers       int
	upstreamConns int
	keep          bool
	perfOut       string
	timeout       time.Duration
	nodes         int
	users         int
	pg            *pgServer // -pg: the shared state's cluster
}

// result is one run's figures.
type result struct {
	opts          options
	accepted      int
	errors        int
	firstErr      error
	acceptedRate  float64 // msgs/s from the first MAIL to the last 250
	deliveredRate float64 // msgs/s from the first MAIL to the sink's last count
	delivered     int64
	p50, p90, p99 time.Duration
	peakRSS       int64 // KiB, VmHWM at the end of the run
	// KiB at the end of the run: anonymous memory (heap, stacks) and the
	// pages of mapped files (bbolt's mmap) that VmHWM also counts.
	endAnon, endFile int64
	idleRSS          int64         // KiB, VmRSS with the idle connections open, before the load
	cpuPerMsg        time.Duration // of every relay node together
	login            time.Duration // wall time for the C reused connections to log in
	// perNode is the messages each node accepted; pgCPUPerMsg and
	// benchCPUPerMsg the CPU time per message of PostgreSQL and of this
	// process (clients and sink).
	perNode                     []int
	pgCPUPerMsg, benchCPUPerMsg time.Duration
	submitted                   time.Duration
	// Cores (CPU seconds per second) during the load: other processes'
	// busy time, I/O wait, hypervisor steal.
	otherCores, iowaitCores, stealCores float64
	pgStats                             string // -pg: pgStats.perMsg over the load and delivery
}

func main() {
	var o options
	var matrix, build, pg bool
	flag.StringVar(&o.bin, "outbound", "bin/outbound", "relay binary; built from ./cmd/outbound when missing (or with -build)")
	flag.BoolVar(&build, "build", false, "rebuild the relay binary before running")
	flag.IntVar(&o.n, "n", 2000, "messages to submit")
	flag.IntVar(&o.c, "c", 10, "concurrent client connections")
	flag.IntVar(&o.size, "size", 4096, "message size in bytes, header included")
	flag.BoolVar(&o.perConnection, "per-connection", false, "open a new STARTTLS + AUTH connection for every message")
	flag.IntVar(&o.idle, "idle", 0, "authenticated idle connections to hold open during the run")
	flag.IntVar(&o.workers, "workers", 32, "relay delivery.workers (the config default)")
	flag.IntVar(&o.upstreamConns, "upstream-conns", 16, "relay delivery.connections_per_upstream (the config default)")
	flag.BoolVar(&o.keep, "keep", false, "keep the relay's temporary directory (config, data, log)")
	flag.StringVar(&o.perfOut, "perf", "", "record the relay with `perf record -g` during the load into this file")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "longest wait for deliveries after the last submission")
	flag.BoolVar(&pg, "pg", false, "keep the shared state in a throwaway PostgreSQL (fsync on) instead of bbolt")
	flag.IntVar(&o.nodes, "nodes", 1, "relay nodes sharing the PostgreSQL store (needs -pg)")
	flag.IntVar(&o.users, "users", 1, "users to spread the clients over (round-robin; more when -n exceeds a user's daily ceiling)")
	flag.BoolVar(&matrix, "matrix", false, "run C = 1, 10, 50 × 4 KiB (2,000 msgs) and 256 KiB (500 msgs); print a markdown table")
	flag.Parse()

	if err := ensureBinary(o.bin, build); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if o.nodes < 1 || (o.nodes > 1 && !pg) {
		fmt.Fprintln(os.Stderr, "bench: -nodes N > 1 needs -pg (nodes share their state in PostgreSQL)")
		os.Exit(2)
	}
	fmt.Println(machine())
	if pg {
		var err error
		if o.pg, err = startPostgres(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Printf("postgres: %s, port %d, the server's defaults (fsync on)\n", o.pg.bin, o.pg.port)
	}
	status := bench(o, matrix)
	if o.pg != nil {
		o.pg.stop()
	}
	os.Exit(status)
}

// bench runs one measurement or the matrix and returns the exit status.
func bench(o options, matrix bool) int {
	if !matrix {
		r, err := run(o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Println(r.line())
		return 0
	}
	var rows []result
	for _, sz := range []struct{ size, n int }{{4096, 2000}, {256 << 10, 500}} {
		for _, c := range []int{1, 10, 50} {
			m := o
			m.size, m.n, m.c, m.perConnection, m.idle = sz.size, sz.n, c, false, 0
			r, err := run(m)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				return 1
			}
			fmt.Println(r.line())
			rows = append(rows, r)
		}
	}
	fmt.Println()
	fmt.Println("| size | clients | msgs | accepted msgs/s | delivered msgs/s | p50 | p90 | p99 | peak RSS | relay CPU/msg | login phase | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %d | %d | %.0f | %.0f | %s | %s | %s | %.0f MiB | %s | %s | %d |\n",
			sizeName(r.opts.size), r.opts.c, r.opts.n, r.acceptedRate, r.deliveredRate,
			ms(r.p50), ms(r.p90), ms(r.p99), float64(r.peakRSS)/1024, ms(r.cpuPerMsg), ms(r.login), r.errors)
	}
	return 0
}

// ensureBinary builds the relay when it is missing or when asked to.
func ensureBinary(bin string, build bool) error {
	if _, err := os.Stat(bin); err == nil && !build {
		return nil
	}
	fmt.Fprintf(os.Stderr, "bench: go build -o %s ./cmd/outbound\n", bin)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/outbound")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// machine describes where the figures come from.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("machine: nproc=%d cpu=%q %s/%s %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func sizeName(b int) string {
	if b%1024 == 0 {
		return fmt.Sprintf("%d KiB", b/1024)
	}
	return fmt.Sprintf("%d B", b)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func (r result) line() string {
	mode := "reuse"
	if r.opts.perConnection {
		mode = "per-connection"
	}
	s := fmt.Sprintf("result: mode=%s c=%d size=%d n=%d idle=%d accepted=%d errors=%d accepted_rate=%.0f/s delivered=%d delivered_rate=%.0f/s p50=%s p90=%s p99=%s peak_rss=%.1fMiB relay_cpu_per_msg=%s",
		mode, r.opts.c, r.opts.size, r.opts.n, r.opts.idle, r.accepted, r.errors, r.acceptedRate,
		r.delivered, r.deliveredRate, ms(r.p50), ms(r.p90), ms(r.p99), float64(r.peakRSS)/1024, ms(r.cpuPerMsg))
	if !r.opts.perConnection {
		s += fmt.Sprintf(" login_phase=%s", ms(r.login))
	}
	s = strings.ReplaceAll(s, " ms", "ms")
	s += fmt.Sprintf(" end_rss_anon=%.1fMiB end_rss_file=%.1fMiB", float64(r.endAnon)/1024, float64(r.endFile)/1024)
	if r.opts.idle > 0 {
		s += fmt.Sprintf(" idle_rss=%.1fMiB", float64(r.idleRSS)/1024)
	}
	if r.opts.pg != nil {
		s += fmt.Sprintf(" store=postgres nodes=%d", r.opts.nodes)
		for i, n := range r.perNode {
			s += fmt.Sprintf(" node%d_accepted=%d node%d_rate=%.0f/s", i+1, n, i+1, float64(n)/r.submitted.Seconds())
		}
		s += fmt.Sprintf(" pg_cpu_per_msg=%.2fms %s", float64(r.pgCPUPerMsg)/float64(time.Millisecond), r.pgStats)
	}
	s += fmt.Sprintf(" bench_cpu_per_msg=%.2fms", float64(r.benchCPUPerMsg)/float64(time.Millisecond))
	s += fmt.Sprintf(" other_cores=%.2f iowait_cores=%.2f steal_cores=%.2f", r.otherCores, r.iowaitCores, r.stealCores)
	if r.opts.users > 1 {
		s += fmt.Sprintf(" users=%d", r.opts.users)
	}
	if r.firstErr != nil {
		s += fmt.Sprintf(" first_error=%q", r.firstErr.Error())
	}
	return s
}

// userPool hands out send permits so that no user exceeds perUserLimit
// messages (the relay's daily ceiling); runs above it use several users.
type userPool struct {
	names     []string
	password  string
	remaining []atomic.Int64
}

func newUserPool(n, atLeast int) *userPool {
	k := max(atLeast, (n+perUserLimit-1)/perUserLimit)
	b := make([]byte, 12)
	rand.Read(b)
	p := &userPool{password: hex.EncodeToString(b), remaining: make([]atomic.Int64, k)}
	for i := range k {
		p.names = append(p.names, fmt.Sprintf("bench%d", i))
		p.remaining[i].Store(perUserLimit)
	}
	return p
}

// take reserves one message for user i if it has quota left.
func (p *userPool) take(i int) bool { return p.remaining[i].Add(-1) >= 0 }

// pick returns a user with quota left, preferring start, or -1.
func (p *userPool) pick(start int) int {
	for k := range p.names {
		i := (start + k) % len(p.names)
		if p.remaining[i].Load() > 0 {
			return i
		}
	}
	return -1
}

const (
	sender    = "bench@bench.test"
	recipient = "rcpt@sink.bench.test"
)

// message returns a fixed body and a per-message header builder whose
// total is size bytes (at least the header).
func message(size int) (func(i int) []byte, []byte) {
	header := func(i int) []byte {
		return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: bench %06d\r\nMessage-ID: <%06d.bench@bench.test>\r\n\r\n",
			sender, recipient, i, i)
	}
	n := size - len(header(0))
	var body []byte
	line := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 3)[:76] + "\r\n")
	for len(body)+len(line) <= n {
		body = append(body, line...)
	}
	if rest := n - len(body); rest >= 3 {
		body = append(body, strings.Repeat("x", rest-2)+"\r\n"...)
	}
	return header, body
}

func run(o options) (res result, err error) {
	res.opts = o
	sk, err := startSink()
	if err != nil {
		return res, err
	}
	defer sk.Close()
	var dsn string
	if o.pg != nil {
		if dsn, err = o.pg.newDatabase(); err != nil {
			return res, fmt.Errorf("postgres: %w", err)
		}
	}
	nodes, err := startNodes(o, sk.Addr(), dsn)
	defer func() {
		for _, n := range nodes {
			n.stop(o.keep)
		}
	}()
	if err != nil {
		return res, err
	}
	rp := nodes[0]
	if o.keep {
		for _, n := range nodes {
			fmt.Fprintf(os.Stderr, "bench: relay directory %s\n", n.dir)
		}
	}
	users := newUserPool(o.n, o.users)
	for _, name := range users.names {
		if err := rp.addUser(name, users.password, "bench.test"); err != nil {
			return res, err
		}
		for _, n := range nodes[1:] {
			if err := n.userVisible(name); err != nil {
				return res, err
			}
		}
	}

	// Idle connections: STARTTLS + AUTH, then silence until the end.
	var idle []*client
	defer func() {
		for _, c := range idle {
			c.conn.Close()
		}
	}()
	if o.idle > 0 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		sem := make(chan struct{}, 20)
		for range o.idle {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				c, err := dialSubmission(rp.startTLS, rp.tlsConfig, users.names[0], users.password)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					firstErr = cmpErr(firstErr, err)
					return
				}
				idle = append(idle, c)
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return res, fmt.Errorf("opening idle connections: %w", firstErr)
		}
		time.Sleep(500 * time.Millisecond)
		res.idleRSS = rp.procStatus("VmRSS")
	}

	header, body := message(o.size)
	var next atomic.Int64
	var accepted, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	lat := make([][]time.Duration, o.c)
	// Reused connections are opened and authenticated before the clock
	// starts, so that the rates describe steady state; the login phase is
	// reported on its own (C concurrent STARTTLS + AUTH).
	conns, connUser := make([]*client, o.c), make([]int, o.c)
	loginStart := time.Now()
	if !o.perConnection {
		var lwg sync.WaitGroup
		var lerr error
		for w := range conns {
			lwg.Add(1)
			go func() {
				defer lwg.Done()
				user := users.pick(w % len(users.names))
				if user < 0 || !users.take(user) {
					return
				}
				c, err := nodes[w%len(nodes)].dial(users.names[user], users.password)
				errMu.Lock()
				defer errMu.Unlock()
				if err != nil {
					lerr = cmpErr(lerr, err)
					return
				}
				conns[w], connUser[w] = c, user
				users.remaining[user].Add(1) // give the permit back: taken per message below
			}()
		}
		lwg.Wait()
		if lerr != nil {
			return res, fmt.Errorf("logging in %d clients: %w", o.c, lerr)
		}
		res.login = time.Since(loginStart)
	}
	var perf *exec.Cmd
	if o.perfOut != "" {
		perf = exec.Command("perf", "record", "-F", "999", "-g", "-p", fmt.Sprint(rp.cmd.Process.Pid), "-o", o.perfOut)
		perf.Stdout, perf.Stderr = os.Stderr, os.Stderr
		if err := perf.Start(); err != nil {
			return res, fmt.Errorf("perf: %w", err)
		}
		time.Sleep(time.Second)
	}

	cpu0, pgCPU0, benchCPU0 := nodesCPU(nodes), o.pg.cpuTime(), procCPU(os.Getpid(), false)
	machine0 := machineCPU()
	var pg0 pgStats
	if o.pg != nil {
		if pg0, err = o.pg.stats(dsn); err != nil {
			return res, fmt.Errorf("postgres statistics: %w", err)
		}
	}
	perNode := make([]atomic.Int64, len(nodes))
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, user := conns[w], connUser[w]
			node := nodes[w%len(nodes)]
			fail := func(err error) {
				failed.Add(1)
				errMu.Lock()
				firstErr = cmpErr(firstErr, err)
				errMu.Unlock()
				if c != nil {
					c.conn.Close()
					c = nil
				}
			}
			for {
				i := int(next.Add(1))
				if i > o.n || failed.Load() > int64(o.n/10+10) {
					break
				}
				if c != nil && !users.take(user) {
					c.quit()
					c = nil
				}
				if c == nil {
					if user = users.pick(user); user < 0 || !users.take(user) {
						fail(errors.New("no user with quota left"))
						continue
					}
					var err error
					if c, err = node.dial(users.names[user], users.password); err != nil {
						fail(err)
						continue
					}
				}
				t0 := time.Now()
				if err := c.send(sender, recipient, header(i), body); err != nil {
					fail(err)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				accepted.Add(1)
				perNode[w%len(nodes)].Add(1)
				if o.perConnection {
					c.quit()
					c = nil
				} else if err := c.rset(); err != nil {
					fail(err)
				}
			}
			if c != nil {
				c.quit()
			}
		}()
	}
	wg.Wait()
	submitted := time.Since(start)
	res.submitted = submitted
	for i := range perNode {
		res.perNode = append(res.perNode, int(perNode[i].Load()))
	}

	res.accepted, res.errors, res.firstErr = int(accepted.Load()), int(failed.Load()), firstErr
	deadline := time.Now().Add(o.timeout)
	for sk.delivered.Load() < accepted.Load() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	res.delivered = sk.delivered.Load()
	if perf != nil {
		perf.Process.Signal(syscall.SIGINT)
		perf.Wait()
	}
	perMsg := func(d time.Duration) time.Duration { return d / time.Duration(max(1, res.accepted)) }
	res.cpuPerMsg = perMsg(nodesCPU(nodes) - cpu0)
	res.pgCPUPerMsg = perMsg(o.pg.cpuTime() - pgCPU0)
	res.benchCPUPerMsg = perMsg(procCPU(os.Getpid(), false) - benchCPU0)
	// What else the machine did meanwhile, in cores: the busy time that was
	// neither ours nor PostgreSQL's (another process's load disturbs the
	// run), and the time the cores waited for the disk or were stolen.
	machine1, wall := machineCPU(), time.Since(start).Seconds()
	ours := nodesCPU(nodes) - cpu0 + o.pg.cpuTime() - pgCPU0 + procCPU(os.Getpid(), false) - benchCPU0
	res.otherCores = (machine1.busy - machine0.busy - ours).Seconds() / wall
	res.iowaitCores = (machine1.iowait - machine0.iowait).Seconds() / wall
	res.stealCores = (machine1.steal - machine0.steal).Seconds() / wall
	if o.pg != nil {
		time.Sleep(1500 * time.Millisecond) // backends report their counters at most once a second
		if pg1, err := o.pg.stats(dsn); err == nil {
			res.pgStats = pg1.perMsg(pg0, res.accepted)
		}
	}
	// Memory: the node that peaked highest.
	for _, n := range nodes {
		if hwm := n.procStatus("VmHWM"); hwm > res.peakRSS {
			res.peakRSS = hwm
			res.endAnon, res.endFile = n.procStatus("RssAnon"), n.procStatus("RssFile")
		}
	}
	res.acceptedRate = float64(res.accepted) / submitted.Seconds()
	if res.delivered > 0 {
		res.deliveredRate = float64(res.delivered) / time.Unix(0, sk.last.Load()).Sub(start).Seconds()
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res.p50, res.p90, res.p99 = pct(all, 50), pct(all, 90), pct(all, 99)
	if res.delivered < int64(res.accepted) {
		res.firstErr = cmpErr(res.firstErr, fmt.Errorf("only %d of %d accepted messages delivered within %s", res.delivered, res.accepted, o.timeout))
	}
	return res, nil
}

// startNodes starts o.nodes relays delivering to upstream: on bbolt when
// dsn is empty, else all on that database, the later ones with the first
// one's master key. It returns the ones it started even on an error, for
// the caller to stop.
func startNodes(o options, upstream, dsn string) ([]*relayProc, error) {
	spec := relaySpec{bin: o.bin, upstream: upstream, workers: o.workers, conns: o.upstreamConns, dsn: dsn}
	var nodes []*relayProc
	for i := range o.nodes {
		spec.node = fmt.Sprintf("node%d", i+1)
		rp, err := startRelay(spec)
		if rp != nil {
			nodes = append(nodes, rp)
		}
		if err != nil {
			return nodes, fmt.Errorf("%s: %w", spec.node, err)
		}
		if i == 0 && o.nodes > 1 {
			if spec.secretsKey, err = os.ReadFile(filepath.Join(rp.dataDir, "secrets.key")); err != nil {
				return nodes, fmt.Errorf("the first node's master key: %w", err)
			}
		}
	}
	return nodes, nil
}

// nodesCPU is the CPU time of every node together.
func nodesCPU(nodes []*relayProc) time.Duration {
	var d time.Duration
	for _, n := range nodes {
		d += n.cpuTime()
	}
	return d
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}
