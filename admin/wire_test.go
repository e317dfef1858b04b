package admin_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"outbound/admin"
)

// sameWire decodes doc strictly (unknown fields refused, as the API
// decodes requests) into a T, and requires it to encode as want: the
// same names, in the same order, the same fields omitted when empty.
func sameWire[T any](t *testing.T, doc, want string) {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s into %T: %v", doc, v, err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(want)); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, compact.Bytes()) {
		t.Errorf("%T encodes as\n%s\nwant\n%s", v, got, compact.Bytes())
	}
}

// The request and view types of smarthosts share their connection fields
// through embedded structs (admin.ConnectionSettings,
// admin.SmarthostSummary). Their JSON is what the API wrote when each
// type spelled its fields out: the same names, order and omitted empty
// fields, for scripts and for clients built before.
func TestWireFormatOfSmarthostRequestsAndViews(t *testing.T) {
	const conn = `"preset": "sendgrid", "host": "smtp.example.com", "port": 587, "tls": "starttls",
		"username": "apikey", "password": "secret-1", "ca_file": "/etc/ca.pem"`
	const spf = `"spf_include": "sendgrid.net", "spf_ips": ["192.0.2.1"], "spf_policy": "enforce"`
	const shown = `"name": "sg", "preset": "sendgrid", "host": "smtp.example.com", "port": 587, "tls": "starttls",
		"username": "apikey", "password": "****xyz789"`
	// Each type with every field given, in the order the API writes them
	// (so the document is its own answer), then with none.
	add := `{"name": "sg", ` + conn + `, ` + spf + `, "fallback": "fb", "force": true}`
	sameWire[admin.SmarthostRequest](t, add, add)
	sameWire[admin.SmarthostRequest](t, `{}`, `{"name": ""}`)

	own := `{` + conn + `, ` + spf + `, "force": true}`
	sameWire[admin.OwnSmarthostRequest](t, own, own)
	sameWire[admin.OwnSmarthostRequest](t, `{}`, `{}`)

	test := `{` + conn + `, "user": "bob", "smarthost": "sg"}`
	sameWire[admin.ConnectionTestRequest](t, test, test)
	sameWire[admin.ConnectionTestRequest](t, `{}`, `{}`)

	view := `{` + shown + `, "ca_file": "/etc/ca.pem", ` + spf +
		`, "fallback": "fb", "owner": "bob", "users": ["bob"], "created": "2024-05-01T10:00:00Z"}`
	sameWire[admin.SmarthostView](t, view, view)
	sameWire[admin.SmarthostView](t, `{}`,
		`{"name": "", "host": "", "port": 0, "tls": "", "users": null, "created": "0001-01-01T00:00:00Z"}`)

	user := `{` + shown + `, "missing": true}`
	sameWire[admin.UserSmarthost](t, user, user)
	// A route naming a smarthost that does not exist.
	sameWire[admin.UserSmarthost](t, `{"name": "gone", "missing": true}`,
		`{"name": "gone", "host": "", "port": 0, "tls": "", "missing": true}`)
}
