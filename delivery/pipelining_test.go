package delivery_test

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"outbound/delivery"
	"outbound/queue"
	"outbound/route"
)

// An upstream that offers PIPELINING gets MAIL, every RCPT and DATA in one
// flight: this one reads the whole envelope before it answers any of it,
// so a relay that waited for each reply would stall and fail the attempt.
// One recipient is refused; the other gets the message, and the refusal
// is that recipient's alone.
func TestDeliveryPipelinesTheEnvelope(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var envelopes [][]string
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				fmt.Fprint(c, "220 strict ESMTP\r\n")
				readLine := func() string {
					line, _ := r.ReadString('\n')
					return strings.TrimRight(line, "\r\n")
				}
				if !strings.HasPrefix(readLine(), "EHLO") {
					return
				}
				fmt.Fprint(c, "250-strict\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
				for {
					// The envelope up to DATA, all read before any reply.
					var env []string
					replies := ""
					for {
						line := readLine()
						if line == "" || strings.HasPrefix(line, "QUIT") {
							return
						}
						env = append(env, line)
						switch {
						case strings.HasPrefix(line, "MAIL"):
							replies += "250 2.1.0 ok\r\n"
						case strings.HasPrefix(line, "RCPT TO:<nobody@"):
							replies += "550 5.1.1 no such user\r\n"
						case strings.HasPrefix(line, "RCPT"):
							replies += "250 2.1.5 ok\r\n"
						default:
							replies += "354 go on\r\n"
						}
						if line == "DATA" {
							break
						}
					}
					mu.Lock()
					envelopes = append(envelopes, env)
					mu.Unlock()
					fmt.Fprint(c, replies)
					for line := readLine(); line != "."; line = readLine() {
					}
					fmt.Fprint(c, "250 2.0.0 queued\r\n")
				}
			}()
		}
	}()
	host, p, _ := net.SplitHostPort(l.Addr().String())
	port, _ := strconv.Atoi(p)
	q := newQueue(t)
	startDelivery(t, q, routes{"": &route.Upstream{Name: "default", Host: host, Port: port, TLSMode: "none"}}, delivery.Options{})
	for i := 0; i < 2; i++ {
		m := add(t, q, body, "bob@example.net", "nobody@example.net")
		m = waitFor(t, q, m.ID, "both recipients settled", finished)
		if bob, nobody := recipient(t, m, "bob@example.net"), recipient(t, m, "nobody@example.net"); bob.Status != queue.Delivered || nobody.Status != queue.Failed {
			t.Fatalf("message %d: bob %s (%s), nobody %s (%s)", i, bob.Status, bob.Reply, nobody.Status, nobody.Reply)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The two messages, and the notice to the sender about nobody@.
	want := []string{"MAIL FROM:<" + sender + "> BODY=8BITMIME", "RCPT TO:<bob@example.net>", "RCPT TO:<nobody@example.net>", "DATA"}
	if len(envelopes) < 2 || strings.Join(envelopes[0], "|") != strings.Join(want, "|") {
		t.Fatalf("upstream read %q, want first %q", envelopes, want)
	}
}
