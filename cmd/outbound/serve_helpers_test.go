package main

import (
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"outbound/internal/testutil"
)

// startFromTOML runs the relay in process on a config of text plus a
// data_dir in a temporary directory, stopped when the test ends.
func startFromTOML(t *testing.T, text string) *server {
	t.Helper()
	dir := t.TempDir()
	text = "data_dir = " + strconv.Quote(filepath.Join(dir, "data")) + "\n" + text
	cfg, err := loadConfig(testutil.WriteFile(t, dir, "outbound.toml", []byte(text)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return srv
}

// submitAsAlice sends one message from alice@example.org (the user the
// serve tests add) to bob@example.net over srv's implicit-TLS listener.
func submitAsAlice(t *testing.T, srv *server, subject string) {
	t.Helper()
	c, err := smtp.DialTLS(srv.addrs["implicit"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "a long enough password")); err != nil {
		t.Fatal(err)
	}
	msg := "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
	if err := c.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
}
