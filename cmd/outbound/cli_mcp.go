package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"outbound/admin"
	"outbound/doctor"
	"outbound/mcp"
	"outbound/spf"
)

// mcpCommand runs `outbound mcp`: the MCP server of package mcp on stdin
// and stdout, for an assistant that starts it (docs/assistants.md). It
// reaches the running relay like every CLI command, through the admin API
// with the admin token; standard output carries only the protocol.
func (e *cliEnv) mcpCommand(args []string) error {
	if len(args) != 0 {
		return usagef("usage: outbound [-config FILE] mcp")
	}
	cfg, err := loadConfig(e.configPath)
	if err != nil {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	resolver, err := spf.NewResolver(cfg.DNS.Servers, 5*time.Second)
	if err != nil {
		return err
	}
	// The doctor tool runs what `doctor` runs, with the configured resolvers.
	runDoctor := func(ctx context.Context) (any, error) {
		opts, early, err := doctorOptions(e, cfg, "1GiB")
		if err != nil {
			return nil, err
		}
		return append(early, doctor.Run(ctx, opts)...), nil
	}
	server := mcp.NewServer(mcp.Options{Client: c, SPFCheck: mcpSPFCheck(&spf.Checker{Resolver: resolver}), Doctor: runDoctor, Version: version})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = server.Run(ctx, &sdk.IOTransport{Reader: io.NopCloser(e.stdin), Writer: nopWriteCloser{e.stdout}})
	// The assistant closing its end, or a signal, is the normal end.
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, sdk.ErrConnectionClosed) {
		return nil
	}
	return err
}

// mcpSPFCheck is the spf_check tool's check of a domain alone: what
// `spf check DOMAIN --include D --ip IP` does, with checker's resolvers.
func mcpSPFCheck(checker *spf.Checker) func(ctx context.Context, domain, include string, ips []string) (any, error) {
	return func(ctx context.Context, domain, include string, ips []string) (any, error) {
		id := spf.Identity{Name: include, Include: include}
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("ips: %q is not an IP address", s)
			}
			id.IPs = append(id.IPs, ip)
		}
		if id.Name == "" {
			id.Name = "the given IPs"
		}
		return spfCheckView(checker.Check(ctx, domain, id), id.Name), nil
	}
}

// mcpHTTP is the tools over HTTP at /mcp on the admin listener (package
// mcp's HTTPHandler): the admin API answers them in process, and the
// request must carry the admin token. doctor is left out: it checks the
// relay from outside, which is the stdio server's place.
func mcpHTTP(api http.Handler, token string, checker *spf.Checker) http.Handler {
	c := admin.NewClient("http://in-process", token, admin.InProcess(api))
	return mcp.HTTPHandler(mcp.Options{Client: c, SPFCheck: mcpSPFCheck(checker), Version: version}, token)
}

// nopWriteCloser leaves standard output open when the session ends.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
