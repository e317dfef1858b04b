package e2e

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's first command: `make run` starts the built binary with no
// config file at all. On those embedded defaults (listeners on
// 127.0.0.1:2465, 2587 and 8025, data in ./data) a user added with the
// CLI (which finds the relay and its token the same way) sends through
// STARTTLS with Python's smtplib, verifying the relay's own certificate,
// and the message is captured, not sent: `outbound capture list` shows it.
func TestEmbeddedDefaultsCaptureWithNoConfig(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:2465", "127.0.0.1:2587", "127.0.0.1:8025"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("%s, an embedded default address, is in use here (a relay started with make run?): %v", addr, err)
		}
		l.Close()
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "relay.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	serve := exec.Command(serveBin, "serve")
	serve.Dir, serve.Stdout, serve.Stderr = dir, logf, logf
	setDeathSignal(serve)
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			serve.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "relay.log"))
			t.Logf("relay log:\n%s", log)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get("http://127.0.0.1:8025/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("outbound serve with no config exited while starting: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("outbound serve with no config: no /healthz on 127.0.0.1:8025 within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "relay.log")); !bytes.Contains(log, []byte("CAPTURE MODE")) {
		t.Errorf("the start log does not say mail is captured:\n%s", log)
	}

	cli := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cliBin, args...)
		cmd.Dir, cmd.Stdin = dir, strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("outbound %s (no config): %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli("a password for the app 1\n", "user", "add", "app@example.com")

	script := `
import os, smtplib, ssl
ctx = ssl.create_default_context(cafile=os.path.join("data", "tls", "cert.pem"))
with smtplib.SMTP("localhost", 2587, timeout=30) as s:
    s.starttls(context=ctx)
    s.login("app@example.com", "a password for the app 1")
    s.sendmail("app@example.com", ["someone@example.net"],
        b"From: app@example.com\r\nTo: someone@example.net\r\nSubject: first run without a config\r\n\r\nHello.\r\n")
print("sent")
`
	py := exec.Command("python3", "-c", script)
	py.Dir = dir
	if out, err := py.CombinedOutput(); err != nil || !strings.Contains(string(out), "sent") {
		t.Fatalf("smtplib through the embedded defaults: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if out := cli("", "capture", "list"); strings.Contains(out, "first run without a config") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the message is not in capture list within 30s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("outbound serve exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("outbound serve did not exit within 30s of SIGTERM")
	}
}
