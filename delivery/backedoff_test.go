package delivery

import (
	"strings"
	"testing"
	"time"
)

// Operators see which upstreams delivery is holding messages for, until
// when, and why; an upstream is listed only while it is backed off.
func TestBackedOffListsUpstreamsHeldOff(t *testing.T) {
	r := downRig(t)
	if got := r.d.BackedOff(); len(got) != 0 {
		t.Fatalf("before any failure: %+v", got)
	}
	r.backOff(t)
	got := r.d.BackedOff()
	if len(got) != 1 {
		t.Fatalf("BackedOff = %+v, want the rig's upstream", got)
	}
	b := got[0]
	if b.Upstream != r.up.Name || b.Failures != 1 || !b.Until.Equal(r.clock.Now().Add(30*time.Second)) || !strings.Contains(b.Reason, "refused") {
		t.Errorf("BackedOff = %+v, want the rig's upstream, 1 failure, until 30s from now, the connection refused", b)
	}
	r.clock.Advance(31 * time.Second)
	if got := r.d.BackedOff(); len(got) != 0 {
		t.Errorf("after the backoff ran out: %+v", got)
	}
}
