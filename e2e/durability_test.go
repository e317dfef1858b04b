package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/internal/testutil"
)

// queueShow is the part of `outbound queue show ID --json` the tests read.
type queueShow struct {
	ID         string `json:"id"`
	Recipients []struct {
		Addr     string `json:"addr"`
		Status   string `json:"status"`
		Attempts int    `json:"attempts"`
	} `json:"recipients"`
}

func (r *relay) queueShow(id string) queueShow {
	r.t.Helper()
	res := r.cli("", "queue", "show", id, "--json")
	if res.Code != 0 {
		r.t.Fatalf("queue show %s: %s", id, res)
	}
	var m queueShow
	if err := json.Unmarshal([]byte(res.Stdout), &m); err != nil || len(m.Recipients) == 0 {
		r.t.Fatalf("queue show %s --json: %v\n%s", id, err, res.Stdout)
	}
	return m
}

// TestRestartWithUpstreamDown: a message accepted while the upstream is
// down stays queued across a clean restart, and once the upstream is back
// it is delivered exactly once.
func TestRestartWithUpstreamDown(t *testing.T) {
	upAddr := testutil.FreePort(t) // nothing listens here yet
	r := newRelay(t, upAddr)
	r.cfg.set("delivery", "connect_timeout", q("500ms"))
	r.cfg.set("retry", "schedule", `["1s"]`)
	r.start()
	r.addUser("app@example.com", "restart-pass-1")

	c, err := r.login(false, "app@example.com", "restart-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := sendMessage(c, "app@example.com", []string{"rcpt@example.net"},
		message("app@example.com", "rcpt@example.net", "survives a restart", "queued while the upstream was down"))
	if err != nil {
		t.Fatalf("submission: %v", err)
	}
	c.Quit()
	t.Logf("queued as %s", id)

	// Let delivery fail at least once, so the restart has to pick up a
	// message that is waiting for its retry, not a fresh one.
	waitUntil(t, 15*time.Second, "a failed delivery attempt", func() bool {
		return r.queueShow(id).Recipients[0].Attempts >= 1
	})
	if m := r.queueShow(id); m.Recipients[0].Status != "queued" {
		t.Fatalf("after a connection refused the recipient is %q, want queued (a temporary failure)", m.Recipients[0].Status)
	}
	r.stop()

	up := testutil.StartUpstreamAt(t, upAddr, testutil.UpstreamOptions{})
	r.start()
	msgs := up.Wait(t, 1, 20*time.Second)
	if p := parseReceived(t, msgs[0].Data); p.Subject != "survives a restart" {
		t.Errorf("upstream got Subject %q", p.Subject)
	}
	waitUntil(t, 10*time.Second, "the queue to record the delivery", func() bool {
		return r.queueShow(id).Recipients[0].Status == "delivered"
	})
	// Exactly once: nothing more arrives within two retry periods.
	time.Sleep(2 * time.Second)
	if n := len(up.Messages()); n != 1 {
		t.Errorf("upstream got the message %d times, want exactly once", n)
	}
}

// TestCrashLosesNothing: eight clients submit 300 messages in all while the
// upstream records; the relay is killed with SIGKILL at a random moment in
// the middle. After a restart every message that got a 250 reaches the
// upstream. Duplicates, and messages delivered without a 250 (committed
// just before the crash, reply never sent), are allowed and only reported.
func TestCrashLosesNothing(t *testing.T) {
	const (
		clients   = 8
		perClient = 38 // 304 in all
	)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.cfg.set("delivery", "workers", "8")
	r.start()
	r.addUser("load@example.com", "crash-pass-123")
	// One login first fills the relay's verification cache, so that the
	// clients start together instead of after eight bcrypt hashes.
	r.mustLogin("load@example.com", "crash-pass-123")

	// Kill after a random number of 250s, so that the crash lands in the
	// middle of the stream however fast this machine is.
	killAfter := 30 + rand.IntN(clients*perClient/2)
	var (
		mu        sync.Mutex
		acked     = map[string]string{} // token → queue ID
		killed    bool
		killedAt  time.Time
		preKill   []string // errors before the kill: not allowed
		postKill  int      // errors after the kill: expected
		killOnce  sync.Once
		wg        sync.WaitGroup
		start     = time.Now()
		killReady = make(chan struct{})
	)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.login(w%2 == 0, "load@example.com", "crash-pass-123")
			if err != nil {
				mu.Lock()
				if killed {
					postKill++
				} else {
					preKill = append(preKill, fmt.Sprintf("client %d login: %v", w, err))
				}
				mu.Unlock()
				return
			}
			defer c.Close()
			for i := 0; i < perClient; i++ {
				token := fmt.Sprintf("crash-c%d-m%03d", w, i)
				id, err := sendMessage(c, "load@example.com", []string{"sink@example.net"},
					message("load@example.com", "sink@example.net", token, "body of "+token))
				mu.Lock()
				if err != nil {
					if killed {
						postKill++
					} else {
						preKill = append(preKill, fmt.Sprintf("%s: %v", token, err))
					}
					mu.Unlock()
					return // the connection is gone with the relay
				}
				acked[token] = id
				n := len(acked)
				mu.Unlock()
				if n >= killAfter {
					killOnce.Do(func() { close(killReady) })
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	select {
	case <-killReady:
	case <-allDone:
		t.Fatalf("all clients finished before %d messages were acknowledged; errors: %v", killAfter, preKill)
	case <-time.After(60 * time.Second):
		t.Fatal("clients did not reach the kill point within 60s")
	}
	mu.Lock()
	killed = true
	killedAt = time.Now()
	mu.Unlock()
	r.kill()
	<-allDone

	mu.Lock()
	defer mu.Unlock()
	t.Logf("SIGKILL after %s, with %d of %d messages acknowledged (kill point %d); %d deliveries seen before the restart; %d clients cut off",
		killedAt.Sub(start).Round(time.Millisecond), len(acked), clients*perClient, killAfter, len(up.Messages()), postKill)
	for _, e := range preKill {
		t.Errorf("submission failed before the kill: %s", e)
	}

	r.start()
	restarted := time.Now()
	counts := map[string]int{}
	missing := func() []string {
		clear(counts)
		for _, m := range up.Messages() {
			counts[parseReceived(t, m.Data).Subject]++
		}
		var out []string
		for token := range acked {
			if counts[token] == 0 {
				out = append(out, token)
			}
		}
		sort.Strings(out)
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	lost := missing()
	t.Logf("%s after the restart, %d acknowledged messages are still missing upstream", time.Since(restarted).Round(time.Millisecond), len(lost))
	if len(lost) > 0 {
		var ids []string
		for _, token := range lost {
			ids = append(ids, token+"="+acked[token])
		}
		t.Errorf("%d of %d acknowledged messages never reached the upstream (token=queue ID): %s",
			len(lost), len(acked), strings.Join(ids, " "))
	}

	// The queue converges too: nothing is left leased or queued.
	waitUntil(t, 15*time.Second, "queue list --status queued to be empty", func() bool {
		res := r.cli("", "queue", "list", "--status", "queued", "--json")
		var left []json.RawMessage
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &left) != nil {
			t.Fatalf("queue list: %s", res)
		}
		return len(left) == 0
	})

	var dups, unacked []string
	for token, n := range counts {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", token, n))
		}
		if _, ok := acked[token]; !ok {
			unacked = append(unacked, token)
		}
	}
	sort.Strings(dups)
	sort.Strings(unacked)
	t.Logf("delivered %d distinct messages for %d acknowledged; duplicates (allowed, redelivered after the crash): %d %v; delivered without a 250 (allowed, committed before the crash): %d %v",
		len(counts), len(acked), len(dups), dups, len(unacked), unacked)
}
