package main

import (
	"strings"
	"testing"
)

// A server on the embedded default route answers the capture commands;
// an unknown ID is named in the error.
func TestCaptureCommands(t *testing.T) {
	config, _ := startServer(t, "127.0.0.1")
	if out, err := runCLI(t, config, "", "capture", "list"); err != nil || !strings.Contains(out, "ID") || !strings.Contains(out, "SUBJECT") {
		t.Fatalf("capture list: %v %s", err, out)
	}
	if out, err := runCLI(t, config, "", "capture", "show", "NOPE"); err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Fatalf("capture show NOPE: %v %s", err, out)
	}
	if out, err := runCLI(t, config, "", "capture", "clear"); err != nil || !strings.Contains(out, "0 captured messages deleted") {
		t.Fatalf("capture clear: %v %s", err, out)
	}
}
