package bounce_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"outbound/bounce"
)

func TestClassifyLinesWritesOneVerdictPerInputLine(t *testing.T) {
	in := strings.Join([]string{
		"550\t5.1.1\tThe email account that you tried to reach does not exist.",
		"",
		"452\t\t4.2.2 The email account that you tried to reach is over quota.",
		"\t\tdial tcp 1.2.3.4:25: connect: connection refused",
		"554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", // no tabs: all text
		"   ",
		"535\tAuthentication failed\r", // one tab: CODE<TAB>TEXT; CRLF input
		"what\tis\tthis",               // not a code: all text
	}, "\n") + "\n"
	var out bytes.Buffer
	if err := bounce.ClassifyLines(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"permanent\tunknown-user\tthe recipient address does not exist\n" +
		"temporary\tmailbox-full\tthe recipient's mailbox is full; will retry\n" +
		"temporary\tnetwork\ta network problem prevented delivery; will retry\n" +
		"temporary\tblocklisted\tthe sending server's IP address or domain is on a blocklist; will retry\n" +
		"temporary\tupstream-auth\tthe upstream server rejected the relay's credentials; the operator must fix the smarthost settings; will retry\n" +
		"temporary\tother\tthe delivery attempt failed for an unknown reason; will retry\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestClassifyLinesOnEmptyInputWritesNothing(t *testing.T) {
	var out bytes.Buffer
	if err := bounce.ClassifyLines(strings.NewReader(""), &out); err != nil || out.Len() != 0 {
		t.Errorf("got %q, %v", out.String(), err)
	}
}

func TestClassifyLinesRefusesAnAbsurdlyLongLine(t *testing.T) {
	in := strings.Repeat("x", 2<<20)
	if err := bounce.ClassifyLines(strings.NewReader(in), &bytes.Buffer{}); err == nil {
		t.Error("a 2 MiB line was accepted")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestClassifyLinesReportsWriteErrors(t *testing.T) {
	if err := bounce.ClassifyLines(strings.NewReader("550\t5.1.1\tuser unknown\n"), failingWriter{}); err == nil {
		t.Error("a failing writer went unnoticed")
	}
}
