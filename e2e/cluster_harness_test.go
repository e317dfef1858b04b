package e2e

// The vocabulary of the cluster scenarios (cluster_test.go): relay nodes
// sharing one PostgreSQL database ([store] kind = "postgres"), each with its
// own data_dir (its bbolt queue, admin token and ports) but one master key,
// and the bookkeeping of load that runs across them.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"

	"outbound/admin"
	"outbound/internal/testutil"
)

// newNode prepares (does not start) a relay on the shared store at dsn
// under the node name name, delivering to upstreamAddr.
func newNode(t *testing.T, upstreamAddr, dsn, name string) *relay {
	t.Helper()
	r := newRelay(t, upstreamAddr)
	r.cfg.set("store", "kind", q("postgres"))
	r.cfg.set("store", "dsn", q(dsn))
	r.cfg.set("store", "node", q(name))
	return r
}

// startCluster starts one node per name on dsn, all delivering to up: the
// first creates the master key (data_dir/secrets.key), which is copied into
// the others' data dirs before they start, as an operator must.
func startCluster(t *testing.T, up *testutil.Upstream, dsn string, names ...string) []*relay {
	t.Helper()
	nodes := make([]*relay, len(names))
	for i, name := range names {
		nodes[i] = newNode(t, up.Addr(), dsn, name)
		if i > 0 {
			copySecretsKey(t, nodes[0], nodes[i])
		}
		nodes[i].start()
	}
	return nodes
}

// copySecretsKey puts from's master key into to's data dir (mode 0600).
func copySecretsKey(t *testing.T, from, to *relay) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(from.DataDir, "secrets.key"))
	if err != nil {
		t.Fatalf("the first node's master key: %v", err)
	}
	writeSecretsKey(t, to, key)
}

func writeSecretsKey(t *testing.T, r *relay, key []byte) {
	t.Helper()
	if err := os.MkdirAll(r.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.DataDir, "secrets.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// otherSecretsKey is a valid master key (64 hex digits) that is not the
// cluster's.
func otherSecretsKey() []byte {
	return []byte(hex.EncodeToString([]byte("a master key nobody else uses!!!")) + "\n")
}

// serveRefused runs `outbound serve` with r's config, requires it to exit
// with a non-zero status within a minute, and returns what it printed.
func serveRefused(t *testing.T, r *relay) string {
	t.Helper()
	if err := os.WriteFile(r.ConfigPath, []byte(r.cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, "serve", "-config", r.ConfigPath)
	setDeathSignal(cmd)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("serve did not exit within 60s (it should refuse to start):\n%s", out)
	case err == nil:
		t.Fatalf("serve exited 0, want a refusal to start:\n%s", out)
	case !errors.As(err, &exit):
		t.Fatalf("serve: %v", err)
	}
	return string(out)
}

// apiGet is GET path on r's admin API with r's admin token, decoded into
// v; it returns the HTTP status (v is only filled on 200).
func (r *relay) apiGet(path string, v any) int {
	r.t.Helper()
	token, err := os.ReadFile(filepath.Join(r.DataDir, "admin.token"))
	if err != nil {
		r.t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+r.AdminAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			r.t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// eventsOf is GET /api/events?user=USER on r, every page.
func (r *relay) eventsOf(user string) []eventRow {
	r.t.Helper()
	var all []eventRow
	cursor := ""
	for {
		v := url.Values{"user": {user}}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		var page struct {
			Events     []eventRow `json:"events"`
			NextCursor string     `json:"next_cursor"`
			More       bool       `json:"more"`
		}
		if code := r.apiGet("/api/events?"+v.Encode(), &page); code != http.StatusOK {
			r.t.Fatalf("GET /api/events on %s: status %d", r.AdminAddr, code)
		}
		all = append(all, page.Events...)
		if !page.More || page.NextCursor == "" || page.NextCursor == cursor {
			return all
		}
		cursor = page.NextCursor
	}
}

// eventRow is the part of an events.Event the scenarios read.
type eventRow struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	User    string `json:"user"`
}

// messageDetail is GET /api/messages/{id} on r: its status, and the
// message when it is 200.
func (r *relay) messageDetail(id string) (admin.MessageDetail, int) {
	r.t.Helper()
	var d admin.MessageDetail
	code := r.apiGet("/api/messages/"+url.PathEscape(id), &d)
	return d, code
}

// isReply says whether err is the SMTP reply code enhanced.
func isReply(err error, code int, enhanced smtp.EnhancedCode) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == code && se.EnhancedCode == enhanced
}

// ledger records what clients running across the nodes were told: every
// subject that got a 250 (with the queue ID and the node), the other
// replies, and anything that is not allowed.
type ledger struct {
	mu      sync.Mutex
	acked   map[string]string // subject → node/queue ID
	refused map[string]int    // reply → count
	bad     []string
}

func newLedger() *ledger {
	return &ledger{acked: map[string]string{}, refused: map[string]int{}}
}

func (l *ledger) ack(subject, node, id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[subject] = node + "/" + id
	return len(l.acked)
}

func (l *ledger) refuse(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused[shortReply(err)]++
}

func (l *ledger) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = append(l.bad, fmt.Sprintf(format, args...))
}

func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// shortReply is an SMTP error's code and enhanced code, or the error.
func shortReply(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return err.Error()
}

// waitAllDelivered waits until every acknowledged subject reached up,
// failing with the missing ones (subject=node/queue ID) after timeout.
func (l *ledger) waitAllDelivered(t *testing.T, up *testutil.Upstream, timeout time.Duration) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := func() []string {
		seen := map[string]bool{}
		for _, m := range up.Messages() {
			seen[parseReceived(t, m.Data).Subject] = true
		}
		var out []string
		for subject, where := range l.acked {
			if !seen[subject] {
				out = append(out, subject+"="+where)
			}
		}
		sort.Strings(out)
		return out
	}
	start := time.Now()
	deadline := start.Add(timeout)
	lost := missing()
	for len(lost) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		lost = missing()
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged messages did not reach the upstream within %s (subject=node/queue ID): %s",
			len(lost), len(l.acked), timeout, strings.Join(lost, " "))
	}
	// Duplicates (redelivered after a crash) and messages delivered
	// without a 250 (committed, reply never sent) are allowed: reported.
	distinct := map[string]bool{}
	for _, m := range up.Messages() {
		distinct[parseReceived(t, m.Data).Subject] = true
	}
	t.Logf("all %d acknowledged messages reached the upstream within %s of waiting (%d received in all, %d distinct)",
		len(l.acked), time.Since(start).Round(time.Millisecond), len(up.Messages()), len(distinct))
}

// sendOne logs in on n as user and sends one message to sink@example.net:
// the error of the login or of the transaction.
func sendOne(n *relay, user, password, subject string) error {
	c, err := n.login(false, user, password)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = sendMessage(c, user, []string{"sink@example.net"}, message(user, "sink@example.net", subject, "x"))
	return err
}

// metricValue is the value of the unlabelled metric name in r's /metrics,
// or "" when it is absent.
func metricValue(t *testing.T, r *relay, name string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + r.AdminAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// sendUntilRefused sends one-recipient messages through n as user on one
// connection until the quota's 450 4.7.1, recording each 250 in l, and
// returns how many were accepted. Any other reply fails t, as do more
// than 100 messages.
func sendUntilRefused(t *testing.T, n *relay, node, user, password string, l *ledger) int {
	t.Helper()
	c, err := n.login(false, user, password)
	if err != nil {
		t.Fatalf("login %s on node %s: %v", user, node, err)
	}
	defer c.Close()
	for i := 0; i < 100; i++ {
		subject := fmt.Sprintf("%s-via-%s-m%03d", user, node, i)
		id, err := sendMessage(c, user, []string{"sink@example.net"}, message(user, "sink@example.net", subject, "x"))
		switch {
		case err == nil:
			l.ack(subject, node, id)
		case isReply(err, 450, smtp.EnhancedCode{4, 7, 1}):
			return i
		default:
			t.Fatalf("%s on node %s: %v, want 250 or the quota's 450 4.7.1", subject, node, err)
		}
	}
	t.Fatalf("node %s accepted 100 messages from %s without a refusal", node, user)
	return 0
}

// waitNodesCounted waits until every node on dsn has counted the live
// nodes (its heartbeat, every 10 s in package store) since the last one
// joined: until then an earlier node still divides the limits by fewer
// nodes while PostgreSQL is down. It reads the nodes table: each node
// counts right after writing its row's seen.
func waitNodesCounted(t *testing.T, dsn string, nodes int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitUntil(t, 45*time.Second, "every node to count the nodes after the last one joined", func() bool {
		// The last node to join counted at its start; the others must
		// have written a heartbeat since.
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM nodes
			WHERE started = (SELECT max(started) FROM nodes) OR seen > (SELECT max(started) FROM nodes)`).Scan(&n)
		if err != nil {
			t.Fatalf("reading the nodes table: %v", err)
		}
		return n == nodes
	})
	// countNodes follows the heartbeat's write by one query.
	time.Sleep(200 * time.Millisecond)
}
