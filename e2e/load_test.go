package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// memoryBoundKiB is the resident memory the README promises for 500 idle
// connections plus 50 submitting clients (measured here: about 30 MiB).
const memoryBoundKiB = 100 << 10

// peakRSS reads the process's peak resident set size (VmHWM) in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// 500 idle connections are held open while 50 clients submit 10 messages
// each: the relay keeps answering everyone, loses nothing, and stays under
// the memory bound.
func TestHoldsIdleConnectionsWhileClientsSubmit(t *testing.T) {
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.noRace = true
	r.cfg.set("submission", "max_connections", "2000")
	r.cfg.set("submission", "max_connections_per_ip", "2000")
	r.cfg.set("log", "level", q("warn"))
	r.start()
	r.addUser("app@example.com", "app password 1")

	const idle, clients, perClient = 500, 50, 10
	var idleConns []net.Conn
	for i := 0; i < idle; i++ {
		c, err := net.Dial("tcp", r.StartTLSAddr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220") {
			t.Fatalf("idle connection %d greeting: %q %v", i, line, err)
		}
		idleConns = append(idleConns, c)
	}

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := r.login(i%2 == 0, "app@example.com", "app password 1")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < perClient; j++ {
				subject := fmt.Sprintf("load %d-%d", i, j)
				if _, err := sendMessage(c, "app@example.com", []string{"bob@example.net"}, message("app@example.com", "bob@example.net", subject, "x")); err != nil {
					errs <- fmt.Errorf("%s: %w", subject, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	up.Wait(t, clients*perClient, 30*time.Second)

	// The idle connections are still served.
	for _, c := range idleConns[:10] {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "NOOP\r\n")
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "250") {
			t.Fatalf("idle connection not served after the load: %q %v", line, err)
		}
	}
	peak := peakRSS(t, r.cmd.Process.Pid)
	t.Logf("relay peak RSS: %d MiB with %d idle connections and %d clients", peak>>10, idle, clients)
	if peak > memoryBoundKiB {
		t.Fatalf("relay peak RSS %d MiB exceeds the documented bound of %d MiB", peak>>10, memoryBoundKiB>>10)
	}
}
