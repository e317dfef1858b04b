package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

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
	// The tools call the same code as `spf check DOMAIN --include/--ip`
	// and `doctor`, with the configured resolvers.
	spfCheck := func(ctx context.Context, domain, include string, ips []string) (any, error) {
		id := spf.Identity{Name: include, Include: include}
		for _, s := range ips {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, errors.New("ips: " + s + " is not an IP address")
			}
			id.IPs = append(id.IPs, ip)
		}
		if id.Name == "" {
			id.Name = "the given IPs"
		}
		return spfCheckView((&spf.Checker{Resolver: resolver}).Check(ctx, domain, id), id.Name), nil
	}
	runDoctor := func(ctx context.Context) (any, error) {
		opts, early, err := doctorOptions(e, cfg, "1GiB")
		if err != nil {
			return nil, err
		}
		return append(early, doctor.Run(ctx, opts)...), nil
	}
	server := mcp.NewServer(mcp.Options{Client: c, SPFCheck: spfCheck, Doctor: runDoctor, Version: version})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = server.Run(ctx, &sdk.IOTransport{Reader: io.NopCloser(e.stdin), Writer: nopWriteCloser{e.stdout}})
	// The assistant closing its end, or a signal, is the normal end.
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, sdk.ErrConnectionClosed) {
		return nil
	}
	return err
}

// nopWriteCloser leaves standard output open when the session ends.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
