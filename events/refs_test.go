package events

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/store"
)

func TestMatchByMessageIDOrProviderIDUntilDeleted(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := OpenBolt(store.Bolt(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	err = b.Record(Event{At: at, Kind: Relayed, Message: "Q1", User: "app", Recipient: "a@x",
		MessageID: "<abc@relay.example>", ProviderID: "P-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ mid, pid string }{{"abc@relay.example", ""}, {"<abc@relay.example>", ""}, {"", "P-1"}, {"unknown@x", "P-1"}} {
		msg, user, ok, err := b.Match(tc.mid, tc.pid)
		if err != nil || !ok || msg != "Q1" || user != "app" {
			t.Errorf("Match(%q, %q) = %q %q %v %v, want Q1 app", tc.mid, tc.pid, msg, user, ok, err)
		}
	}
	if _, _, ok, _ := b.Match("", ""); ok {
		t.Error("empty ids matched a message")
	}
	if err := b.DeleteMessage("Q1"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := b.Match("abc@relay.example", "P-1"); ok {
		t.Error("a deleted message is still matched")
	}
}
