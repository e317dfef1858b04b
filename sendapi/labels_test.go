package sendapi

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"outbound/quota"
)

func TestTagsAndMetadataAreQueuedAndInTheEvents(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	body := map[string]any{"from": alice, "to": []string{"bob@example.net", "carol@example.net"}, "subject": "Receipt", "text": "Thanks.",
		"tags": []string{"receipt", "shop"}, "metadata": map[string]string{"order_id": "A-1001", "customer": "42"}}
	resp, out := h.post(t, h.key, body)
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	wantTags := []string{"receipt", "shop"}
	wantMeta := map[string]string{"order_id": "A-1001", "customer": "42"}
	ms := h.queued(t)
	if len(ms) != 1 || !reflect.DeepEqual(ms[0].Tags, wantTags) || !reflect.DeepEqual(ms[0].Metadata, wantMeta) {
		t.Fatalf("queued %+v", ms)
	}
	// Labels, not content: the message as sent does not carry them.
	raw, _ := h.q.Body(ms[0].ID)
	if strings.Contains(string(raw), "A-1001") || strings.Contains(string(raw), "receipt") {
		t.Errorf("the message carries the labels:\n%s", raw)
	}
	evs, err := h.log.ForMessage(ms[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("events %+v, want a received event per recipient", evs)
	}
	for _, e := range evs {
		if !reflect.DeepEqual(e.Tags, wantTags) || !reflect.DeepEqual(e.Metadata, wantMeta) {
			t.Errorf("event %+v lacks the message's tags and metadata", e)
		}
	}
}

func TestTagsAndMetadataOverTheLimitsNameTheField(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	with := func(k string, v any) map[string]any {
		return map[string]any{"from": alice, "to": []string{"bob@example.net"}, "subject": "Hi", "text": "x", k: v}
	}
	many := map[string]string{}
	for i := range 21 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	for _, tc := range []struct {
		body   any
		status int
		field  string
	}{
		{with("tags", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}), 422, "tags"},
		{with("tags", []string{"ok", strings.Repeat("x", 65)}), 422, "tags[1]"},
		{with("tags", []string{"ok", "line\nbreak"}), 422, "tags[1]"},
		{with("tags", []string{""}), 422, "tags[0]"},
		{with("tags", []string{"twice", "twice"}), 422, "tags[1]"},
		{with("tags", "receipt"), 400, "tags"},
		{with("metadata", many), 422, "metadata"},
		{with("metadata", map[string]string{strings.Repeat("k", 65): "v"}), 422, "metadata." + strings.Repeat("k", 65)},
		{with("metadata", map[string]string{"order_id": strings.Repeat("v", 513)}), 422, "metadata.order_id"},
		{with("metadata", map[string]string{"bad\tkey": "v"}), 422, "metadata.bad\tkey"},
		{with("metadata", map[string]any{"order_id": 1001}), 400, "metadata"},
	} {
		resp, out := h.post(t, h.key, tc.body)
		_, field, _ := errorOf(t, out)
		if resp.StatusCode != tc.status || field != tc.field {
			t.Errorf("%.120v: %d %v, want %d naming %q", tc.body, resp.StatusCode, out, tc.status, tc.field)
		}
	}
	if ms := h.queued(t); len(ms) != 0 {
		t.Errorf("refused requests queued %d messages", len(ms))
	}
	// At the limits exactly, it is taken.
	tags := make([]string, 10)
	for i := range tags {
		tags[i] = fmt.Sprintf("%02d", i) + strings.Repeat("é", 31)
	}
	meta := map[string]string{}
	for i := range 20 {
		meta[fmt.Sprintf("%02d", i)+strings.Repeat("k", 62)] = strings.Repeat("v", 512)
	}
	body := with("tags", tags)
	body["metadata"] = meta
	if resp, out := h.post(t, h.key, body); resp.StatusCode != 202 {
		t.Fatalf("at the limits: %d %v", resp.StatusCode, out)
	}
}
