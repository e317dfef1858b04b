package providerhooks

import (
	"testing"
	"time"
)

func TestReplaySeenWithinWindowOnly(t *testing.T) {
	r := NewReplay(time.Minute, 10)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if r.Seen("a", t0) {
		t.Fatal("first sight reported as seen")
	}
	if !r.Seen("a", t0.Add(30*time.Second)) {
		t.Fatal("second sight within the window not reported")
	}
	if r.Seen("a", t0.Add(2*time.Minute)) {
		t.Fatal("token remembered past the window")
	}
}

func TestReplayBoundedForgetsOldestFirst(t *testing.T) {
	r := NewReplay(time.Hour, 2)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.Seen("a", t0)
	r.Seen("b", t0)
	r.Seen("c", t0)
	if len(r.seen) != 2 {
		t.Fatalf("holds %d tokens, want at most 2", len(r.seen))
	}
	if !r.Seen("c", t0) || !r.Seen("b", t0) {
		t.Fatal("newest tokens forgotten")
	}
}

func TestReplayForgetAcceptsAgain(t *testing.T) {
	r := NewReplay(time.Hour, 10)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.Seen("a", t0)
	r.Forget("a")
	if r.Seen("a", t0) {
		t.Fatal("forgotten token still seen")
	}
}

func TestGuardRefusesStaleAndReplayed(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGuard(func() time.Time { return now }, 0)
	if _, err := g.Check(now.Add(-6*time.Minute), "x:1"); StatusOf(err) != 401 {
		t.Fatalf("stale: %v, want 401", err)
	}
	if _, err := g.Check(now.Add(-time.Minute), "x:2"); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	if _, err := g.Check(now.Add(-time.Minute), "x:2"); StatusOf(err) != 409 {
		t.Fatalf("replay: %v, want 409", err)
	}
}

func TestGuardClaimReleasedAcceptsAgain(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGuard(func() time.Time { return now }, 0)
	claim, err := g.Check(now, "x:1")
	if err != nil {
		t.Fatal(err)
	}
	// A replay refused while the token is held gives no claim: releasing
	// it must not free the first request's token.
	refused, err := g.Check(now, "x:1")
	if StatusOf(err) != 409 {
		t.Fatalf("replay: %v, want 409", err)
	}
	refused.Release()
	if _, err := g.Check(now, "x:1"); StatusOf(err) != 409 {
		t.Fatalf("after releasing a refused request's claim: %v, want 409", err)
	}
	claim.Release()
	if _, err := g.Check(now, "x:1"); err != nil {
		t.Fatalf("after releasing the claim: %v, want the token taken again", err)
	}
}

// A claim released after its token expired and was taken by another
// request leaves that request's token alone.
func TestClaimReleaseLeavesALaterClaimAlone(t *testing.T) {
	r := NewReplay(time.Minute, 10)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if r.Seen("a", t0) {
		t.Fatal("first sight reported as seen")
	}
	old := r.claim("a", t0)
	t1 := t0.Add(2 * time.Minute)
	if r.Seen("a", t1) {
		t.Fatal("token remembered past the window")
	}
	old.Release()
	if !r.Seen("a", t1.Add(time.Second)) {
		t.Fatal("an old claim's release freed the token taken since")
	}
}
