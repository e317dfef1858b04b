package relay

import (
	"bytes"
	"testing"
)

// FuzzMessageHandling runs the relay's message handling on arbitrary DATA:
// after normalization no bare CR or LF is left, normalizing twice changes
// nothing, and header parsing never panics.
func FuzzMessageHandling(f *testing.F) {
	f.Add([]byte("From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\n\nfirst\n.\nMAIL FROM:<x@y>\r\n"))
	f.Add([]byte("From: a@b\r\r\n\r\n\r.\r\n"))
	f.Add([]byte("no header at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		norm, _ := normalizeLineEndings(data)
		for i := 0; i < len(norm); i++ {
			if norm[i] == '\n' && (i == 0 || norm[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, norm)
			}
			if norm[i] == '\r' && (i+1 == len(norm) || norm[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, norm)
			}
		}
		if again, bare := normalizeLineEndings(norm); bare || !bytes.Equal(again, norm) {
			t.Fatalf("normalizing twice changed %q", norm)
		}
		header, _ := splitHeader(norm)
		if h, err := parseHeader(header); err == nil {
			headerAddresses(h.Values("From"))
		}
	})
}
