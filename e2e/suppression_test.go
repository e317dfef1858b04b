package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/internal/testutil"
	"outbound/suppression"
)

// A recipient the upstream refuses as unknown (550 5.1.1) is suppressed:
// `suppression list --json` shows it, the next RCPT to it gets 550 5.1.1
// naming the reason and the command to lift it, and after that command,
// `outbound suppression del ADDR` exactly as the reply words it, RCPT is
// accepted again.
func TestSuppressionFromUnknownUserAndLift(t *testing.T) {
	const gone = "gone@example.net"
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{Rcpt: func(to string) error {
		if to == gone {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
		}
		return nil
	}})
	r := newRelay(t, up.Addr())
	r.start()
	r.addUser("app@example.com", "app password 1")
	c, err := r.login(true, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := sendMessage(c, "app@example.com", []string{gone}, message("app@example.com", gone, "hello", "x")); err != nil {
		t.Fatal(err)
	}

	var list []suppression.Entry
	waitUntil(t, 30*time.Second, "the recipient to be suppressed", func() bool {
		res := r.cli("", "suppression", "list", "--json")
		return res.Code == 0 && json.Unmarshal([]byte(res.Stdout), &list) == nil && len(list) == 1
	})
	if e := list[0]; e.Addr != gone || e.User != "app@example.com" || e.Kind != suppression.Bounce || !strings.Contains(e.Reason, "No such user here") {
		t.Fatalf("entry: %+v", e)
	}

	if err := c.Mail("app@example.com", nil); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(gone, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) ||
		!strings.Contains(se.Message, "No such user here") || !strings.Contains(se.Message, `"outbound suppression del `+gone+`"`) {
		t.Fatalf("RCPT to a suppressed recipient: %v", err)
	}

	if res := r.cli("", "suppression", "del", gone); res.Code != 0 || !strings.Contains(res.Stdout, "no longer suppressed") {
		t.Fatalf("suppression del: %s", res)
	}
	if err := c.Rcpt(gone, nil); err != nil {
		t.Fatalf("RCPT after the suppression was lifted: %v", err)
	}
}
