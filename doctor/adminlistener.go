package doctor

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
)

// checkAdmin makes sure the admin listener does not speak plain HTTP
// beyond loopback, where the bearer token and sign-in passwords would
// cross the network in the clear. It asks for /healthz in plain HTTP and
// expects no answer in kind (Go's HTTPS server answers a plain request
// with a 400 that names the mistake, or the connection closes).
func checkAdmin(ctx context.Context, o *Options) Result {
	name := "admin listener " + o.AdminAddr + " not in plain HTTP"
	if o.AdminAddr == "" {
		return pass(name, "no admin listener")
	}
	if !o.AdminExposed {
		return pass(name, "plain HTTP on loopback only, nothing crosses a network")
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := o.Dial(ctx, "tcp", o.AdminAddr)
	if err != nil {
		return fail(name, "cannot connect: "+err.Error(), "start `outbound serve` and check [admin] listen")
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", o.AdminAddr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return pass(name, "plain HTTP refused")
	}
	defer resp.Body.Close()
	body := make([]byte, 512)
	n, _ := resp.Body.Read(body)
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body[:n]), "HTTPS") {
		return pass(name, "serves HTTPS only")
	}
	return fail(name, fmt.Sprintf("answers plain HTTP (%s) on a non-loopback address", resp.Status),
		"put [admin] listen on 127.0.0.1, or serve it over HTTPS")
}
