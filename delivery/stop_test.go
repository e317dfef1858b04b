package delivery_test

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"outbound/delivery"
	"outbound/queue"
	"outbound/route"
)

// An upstream that stops answering in the middle of a transaction does
// not hold the shutdown for the command timeout: after StopGrace the
// connection is cut and the message goes back to the queue as it was (no
// attempt counted), to be sent after the restart.
func TestStopCutsOffATransactionThatHangs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	gotMail := make(chan struct{}, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				fmt.Fprint(c, "220 stuck ESMTP\r\n")
				r.ReadString('\n') // EHLO
				fmt.Fprint(c, "250-stuck\r\n250 8BITMIME\r\n")
				if line, _ := r.ReadString('\n'); strings.HasPrefix(line, "MAIL") {
					gotMail <- struct{}{}
				}
				r.ReadString('\n') // never answers; returns when the relay closes
			}()
		}
	}()
	host, p, _ := net.SplitHostPort(l.Addr().String())
	port, _ := strconv.Atoi(p)
	q := newQueue(t)
	stop := startDelivery(t, q, routes{"": &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "none"}},
		delivery.Options{CommandTimeout: time.Minute, StopGrace: 200 * time.Millisecond})
	m := add(t, q, body, "bob@example.net")
	select {
	case <-gotMail:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never got MAIL")
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run still waiting 5s after done for a transaction the upstream stopped answering (the command timeout is a minute)")
	}
	got, err := q.Get(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Recipients[0]; r.Status != queue.Queued || r.Attempts != 0 || len(got.Attempts) != 0 {
		t.Fatalf("after the cut-off: %s (attempts %d, history %d); want it queued as it was", r.Status, r.Attempts, len(got.Attempts))
	}
}
