package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"outbound/internal/testutil"
)

// mountSmallDisk mounts a 4 MiB tmpfs for the relay's data_dir, or skips
// when this machine does not allow mounts (not root, no tmpfs).
func mountSmallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v: %s); the full-disk scenario needs root", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			return path
		}
	}
}

// A full disk gets 452 4.3.1 at end of DATA, the relay keeps running and
// nothing half-written is delivered; once space returns it accepts and
// delivers again.
func TestFullDiskGetsTemporaryErrorAndRecovers(t *testing.T) {
	disk := mountSmallDisk(t)
	up := testutil.StartUpstream(t, testutil.UpstreamOptions{})
	r := newRelay(t, up.Addr())
	r.DataDir = filepath.Join(disk, "data")
	r.cfg.set("", "data_dir", q(r.DataDir))
	r.start()
	r.addUser("app@example.com", "app password 1")
	c, err := r.login(true, "app@example.com", "app password 1")
	if err != nil {
		t.Fatal(err)
	}
	big := message("app@example.com", "bob@example.net", "big", strings.Repeat(strings.Repeat("0123456789abcdef", 4)+"\n", 8<<10)) // 520 KiB

	filler := fill(t, disk)
	_, err = sendMessage(c, "app@example.com", []string{"bob@example.net"}, big)
	if code := smtpCode(err); code != 452 || !strings.Contains(err.Error(), "Insufficient system storage") {
		t.Fatalf("full disk: got %v, want 452 4.3.1", err)
	}
	var se *smtp.SMTPError
	if asSMTP(err, &se) && se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("enhanced code %v, want 4.3.1", se.EnhancedCode)
	}
	if !r.running() {
		t.Fatal("the relay died on a full disk")
	}

	os.Remove(filler)
	c.Reset()
	if _, err := sendMessage(c, "app@example.com", []string{"bob@example.net"}, big); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	msgs := up.Wait(t, 1, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	if msgs = up.Messages(); len(msgs) != 1 {
		t.Fatalf("upstream got %d messages, want exactly the one accepted", len(msgs))
	}
}

func asSMTP(err error, target **smtp.SMTPError) bool {
	se, ok := err.(*smtp.SMTPError)
	if ok {
		*target = se
	}
	return ok
}
