package providerhooks

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/store"
	"outbound/suppression"
)

// rig is a Handler over real bbolt stores, with the clock at now and the
// message "Q1" of user "app" relayed with Message-ID ourMessageID, tagged
// ourTags with metadata ourMetadata.
type rig struct {
	t       *testing.T
	h       *Handler
	db      *bolt.DB
	events  *events.Bolt
	sup     *suppression.Bolt
	now     time.Time
	secrets Secrets
	sgKey   *ecdsa.PrivateKey

	mu     sync.Mutex
	counts map[string]int
}

const (
	ourMessageID  = "20260102150405.Q1@relay.example"
	ourProviderID = "14c5d75ce93.dfd.64b469"
)

// ourTags and ourMetadata are Q1's labels (queue.Message), fresh each
// time so no test can change another's.
func ourTags() []string              { return []string{"receipt", "shop"} }
func ourMetadata() map[string]string { return map[string]string{"order_id": "A-1001"} }

func newRig(t *testing.T) *rig {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev, err := events.OpenBolt(store.Bolt(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, db: db, events: ev, now: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), counts: map[string]int{}}
	r.sup, err = suppression.OpenBolt(store.Bolt(db), suppression.PerUser, 0, func() time.Time { return r.now })
	if err != nil {
		t.Fatal(err)
	}
	r.sgKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&r.sgKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	r.secrets = Secrets{MailgunSigningKey: "key-mailgun-test", SendGridPublicKey: base64.StdEncoding.EncodeToString(der),
		GenericSecret: "generic-test-secret"}
	clock := func() time.Time { return r.now }
	// Q1 of user app was relayed with our Message-ID and provider id; the
	// event carries the message's labels, as delivery writes it.
	err = ev.Record(events.Event{At: r.now.Add(-time.Hour), Kind: events.Relayed, Message: "Q1", User: "app",
		Recipient: "alice@example.com", MessageID: "<" + ourMessageID + ">", ProviderID: ourProviderID,
		Tags: ourTags(), Metadata: ourMetadata()})
	if err != nil {
		t.Fatal(err)
	}
	r.h = NewHandler(Options{
		Secrets: func(name string) (Secrets, error) {
			if name == "mg" {
				return r.secrets, nil
			}
			return Secrets{}, nil
		},
		Verifiers:    Verifiers(NewGuard(clock, 0)),
		Messages:     ev,
		Events:       ev,
		Suppressions: r.sup,
		Now:          clock,
		Count: func(provider, result string) {
			r.mu.Lock()
			r.counts[provider+" "+result]++
			r.mu.Unlock()
		},
	})
	return r
}

func (r *rig) post(path string, body []byte, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w
}

// testdata reads a documented payload with its Message-ID (Mailgun's
// sandbox one, SendGrid's smtp-id) replaced by ours.
func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, id := range []string{"20130503192659.13651.20287@sandbox1234.mailgun.org", "20130503182626.18666.16540@sandbox1234.mailgun.org",
		"20110215055645.25246.63817@sandbox1234.mailgun.org", "14c5d75ce93.dfd.64b469@ismtpd-555", "20260102150405.abc@relay.example"} {
		s = strings.ReplaceAll(s, id, ourMessageID)
	}
	return []byte(s)
}

// mailgunSigned is a Mailgun payload signed with key at ts with token.
func mailgunSigned(t *testing.T, payload []byte, key string, ts time.Time, token string) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	p["signature"] = map[string]any{"timestamp": stamp, "token": token, "signature": mailgunSign(key, stamp, token)}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// timeline is what providers reported of Q1 (its relayed event left out).
func (r *rig) timeline() []events.Event {
	r.t.Helper()
	evs, err := r.events.ForMessage("Q1")
	if err != nil {
		r.t.Fatal(err)
	}
	var out []events.Event
	for _, e := range evs {
		if e.Kind != events.Relayed {
			out = append(out, e)
		}
	}
	return out
}

func (r *rig) suppressed(addr string) *suppression.Entry {
	r.t.Helper()
	e, err := r.sup.Lookup("app", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	return e
}

func TestMailgunPermanentFailureRecordedAndSuppressed(t *testing.T) {
	r := newRig(t)
	body := mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "key-mailgun-test", r.now, "tok1")
	w := r.post("/hooks/mg/mailgun", body, nil)
	if w.Code != 200 {
		t.Fatalf("got %d %s, want 200", w.Code, w.Body)
	}
	evs := r.timeline()
	if len(evs) != 1 || evs[0].Kind != events.ProviderBounced || evs[0].Recipient != "alice@example.com" ||
		evs[0].User != "app" || evs[0].Upstream != "mg" || !strings.HasPrefix(evs[0].Detail, "permanent, unknown-user") {
		t.Fatalf("timeline %+v, want one permanent unknown-user provider_bounced for alice", evs)
	}
	if !strings.Contains(evs[0].Reply, "550 5.1.1") {
		t.Errorf("reply %q, want the remote server's 550 5.1.1", evs[0].Reply)
	}
	e := r.suppressed("alice@example.com")
	if e == nil || e.Kind != suppression.Bounce || e.Message != "Q1" {
		t.Fatalf("suppression %+v, want a bounce from Q1", e)
	}
}

func TestMailgunDeliveredRecordedNotSuppressed(t *testing.T) {
	r := newRig(t)
	body := mailgunSigned(t, testdata(t, "mailgun_delivered.json"), "key-mailgun-test", r.now, "tok1")
	if w := r.post("/hooks/mg/mailgun", body, nil); w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if evs := r.timeline(); len(evs) != 1 || evs[0].Kind != events.ProviderDelivered {
		t.Fatalf("timeline %+v, want provider_delivered", evs)
	}
	if r.suppressed("alice@example.com") != nil {
		t.Fatal("a delivered recipient was suppressed")
	}
}

func TestMailgunComplaintSuppressesForGood(t *testing.T) {
	r := newRig(t)
	body := mailgunSigned(t, testdata(t, "mailgun_complained.json"), "key-mailgun-test", r.now, "tok1")
	if w := r.post("/hooks/mg/mailgun", body, nil); w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	e := r.suppressed("alice@example.com")
	if e == nil || e.Kind != suppression.Complaint || !e.Expires.IsZero() {
		t.Fatalf("suppression %+v, want a complaint that never expires", e)
	}
	if evs := r.timeline(); len(evs) != 1 || evs[0].Kind != events.ProviderComplained {
		t.Fatalf("timeline %+v", evs)
	}
}

// Every refusal records nothing and suppresses nobody.
func TestMailgunRefusals(t *testing.T) {
	r := newRig(t)
	good := func(token string) []byte {
		return mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "key-mailgun-test", r.now, token)
	}
	tests := []struct {
		name string
		path string
		body []byte
		want int
	}{
		{"bad signature", "/hooks/mg/mailgun", mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "another-key", r.now, "t1"), 401},
		{"documentation's own signature", "/hooks/mg/mailgun", testdata(t, "mailgun_failed_permanent.json"), 401},
		{"stale timestamp", "/hooks/mg/mailgun", mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "key-mailgun-test", r.now.Add(-6*time.Minute), "t2"), 401},
		{"future timestamp", "/hooks/mg/mailgun", mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "key-mailgun-test", r.now.Add(6*time.Minute), "t3"), 401},
		{"malformed JSON", "/hooks/mg/mailgun", []byte(`{"signature": {`), 400},
		{"smarthost without secrets", "/hooks/other/mailgun", good("t4"), 401},
		{"unknown provider", "/hooks/mg/nosuch", good("t5"), 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := r.post(tc.path, tc.body, nil); w.Code != tc.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.want)
			}
		})
	}
	if evs := r.timeline(); len(evs) != 0 {
		t.Fatalf("refused requests recorded %+v", evs)
	}
	if r.suppressed("alice@example.com") != nil {
		t.Fatal("a refused request suppressed the recipient")
	}
}

func TestMailgunReplayRefused(t *testing.T) {
	r := newRig(t)
	body := mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "key-mailgun-test", r.now, "once")
	if w := r.post("/hooks/mg/mailgun", body, nil); w.Code != 200 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	r.now = r.now.Add(time.Minute)
	if w := r.post("/hooks/mg/mailgun", body, nil); w.Code != 409 {
		t.Fatalf("replay: %d %s, want 409", w.Code, w.Body)
	}
	if evs := r.timeline(); len(evs) != 1 {
		t.Fatalf("replay recorded again: %d events", len(evs))
	}
}

func TestUnmatchedEventCountedNotRecorded(t *testing.T) {
	r := newRig(t)
	payload := bytes.ReplaceAll(testdata(t, "mailgun_failed_permanent.json"), []byte(ourMessageID), []byte("not-ours@elsewhere"))
	w := r.post("/hooks/mg/mailgun", mailgunSigned(t, payload, "key-mailgun-test", r.now, "t"), nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"unmatched":1`) {
		t.Fatalf("got %d %s, want 200 with one unmatched", w.Code, w.Body)
	}
	if r.counts["mailgun unmatched"] != 1 {
		t.Fatalf("counts %v, want one mailgun unmatched", r.counts)
	}
	if r.suppressed("alice@example.com") != nil {
		t.Fatal("an event for no message of ours suppressed its recipient")
	}
}

func TestBodyOverLimitRefused(t *testing.T) {
	r := newRig(t)
	big := bytes.Repeat([]byte(" "), DefaultMaxBody+1)
	if w := r.post("/hooks/mg/mailgun", big, nil); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d, want 413", w.Code)
	}
}

// sendGridSigned are the headers SendGrid signs body with at ts.
func (r *rig) sendGridSigned(body []byte, ts time.Time) http.Header {
	r.t.Helper()
	stamp := strconv.FormatInt(ts.Unix(), 10)
	sum := sha256.Sum256(append([]byte(stamp), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, r.sgKey, sum[:])
	if err != nil {
		r.t.Fatal(err)
	}
	h := http.Header{}
	h.Set(SendGridSignatureHeader, base64.StdEncoding.EncodeToString(sig))
	h.Set(SendGridTimestampHeader, stamp)
	return h
}

func TestSendGridEventsRecorded(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "sendgrid_events.json")
	w := r.post("/hooks/mg/sendgrid", body, r.sendGridSigned(body, r.now))
	if w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	var kinds []string
	for _, e := range r.timeline() {
		kinds = append(kinds, string(e.Kind))
	}
	// processed and open are no outcome.
	want := "provider_bounced provider_delivered provider_bounced provider_dropped provider_complained"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("kinds %v, want %s", kinds, want)
	}
	e := r.suppressed("example@test.com")
	if e == nil || e.Kind != suppression.Complaint {
		t.Fatalf("suppression %+v, want the complaint", e)
	}
}

func TestSendGridMatchedByProviderID(t *testing.T) {
	r := newRig(t)
	body := []byte(`[{"email":"x@test.com","timestamp":1513299569,"event":"delivered","sg_event_id":"a","sg_message_id":"` + ourProviderID + `.filter0001.16648.5515E0B88.0","response":"250 OK"}]`)
	if w := r.post("/hooks/mg/sendgrid", body, r.sendGridSigned(body, r.now)); w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if evs := r.timeline(); len(evs) != 1 || evs[0].ProviderID != ourProviderID {
		t.Fatalf("timeline %+v, want the event matched by its provider id", evs)
	}
}

func TestSendGridRefusals(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "sendgrid_events.json")
	tampered := r.sendGridSigned(body, r.now)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongKey := func() http.Header {
		stamp := strconv.FormatInt(r.now.Unix(), 10)
		sum := sha256.Sum256(append([]byte(stamp), body...))
		sig, _ := ecdsa.SignASN1(rand.Reader, other, sum[:])
		h := http.Header{}
		h.Set(SendGridSignatureHeader, base64.StdEncoding.EncodeToString(sig))
		h.Set(SendGridTimestampHeader, stamp)
		return h
	}()
	bad := []byte("[{not json")
	tests := []struct {
		name   string
		body   []byte
		header http.Header
		want   int
	}{
		{"tampered body", append([]byte(" "), body...), tampered, 401},
		{"another key", body, wrongKey, 401},
		{"no signature", body, nil, 401},
		{"stale timestamp", body, r.sendGridSigned(body, r.now.Add(-10*time.Minute)), 401},
		{"malformed JSON", bad, r.sendGridSigned(bad, r.now), 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := r.post("/hooks/mg/sendgrid", tc.body, tc.header); w.Code != tc.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.want)
			}
		})
	}
	good := r.sendGridSigned(body, r.now)
	if w := r.post("/hooks/mg/sendgrid", body, good); w.Code != 200 {
		t.Fatalf("valid: %d", w.Code)
	}
	if w := r.post("/hooks/mg/sendgrid", body, good); w.Code != 409 {
		t.Fatalf("replay: %d, want 409", w.Code)
	}
	if n := len(r.timeline()); n != 5 {
		t.Fatalf("%d events recorded, want only the valid request's 5", n)
	}
}

func (r *rig) genericSigned(body []byte, ts time.Time, secret string) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	h := http.Header{}
	h.Set(GenericTimestampHeader, stamp)
	h.Set(GenericSignatureHeader, GenericSign(secret, stamp, body))
	return h
}

func TestGenericBounceRecordedAndSuppressed(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "generic_bounced.json")
	if w := r.post("/hooks/mg/generic", body, r.genericSigned(body, r.now, "generic-test-secret")); w.Code != 200 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if e := r.suppressed("gone@example.com"); e == nil || e.Kind != suppression.Bounce {
		t.Fatalf("suppression %+v, want a bounce", e)
	}
}

func TestGenericRefusals(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "generic_bounced.json")
	bad := []byte(`{"event": `)
	tests := []struct {
		name   string
		body   []byte
		header http.Header
		want   int
	}{
		{"bad signature", body, r.genericSigned(body, r.now, "wrong"), 401},
		{"stale", body, r.genericSigned(body, r.now.Add(-time.Hour), "generic-test-secret"), 401},
		{"malformed", bad, r.genericSigned(bad, r.now, "generic-test-secret"), 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := r.post("/hooks/mg/generic", tc.body, tc.header); w.Code != tc.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.want)
			}
		})
	}
	if len(r.timeline()) != 0 || r.suppressed("gone@example.com") != nil {
		t.Fatal("a refused request left a trace")
	}
}

// A provider's retry of an event recorded already (same event id, newly
// signed) is answered 200 and not recorded twice.
func TestDuplicateEventIDSkipped(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "generic_bounced.json")
	r.post("/hooks/mg/generic", body, r.genericSigned(body, r.now, "generic-test-secret"))
	r.now = r.now.Add(time.Hour)
	w := r.post("/hooks/mg/generic", body, r.genericSigned(body, r.now, "generic-test-secret"))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"duplicates":1`) {
		t.Fatalf("got %d %s, want 200 with one duplicate", w.Code, w.Body)
	}
	if n := len(r.timeline()); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
}
