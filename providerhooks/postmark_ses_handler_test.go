package providerhooks

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/events"
	"outbound/store"
	"outbound/suppression"
)

// pmSESRig is a Handler over real bbolt stores with the Postmark and SES
// verifiers (SES fetching through a fakeFetcher), and two messages of user
// "app": Q-ses relayed through SES to jane@example.com and Q-pm through
// Postmark to john@example.com, each with the provider id from its 250 and
// the labels ourTags and ourMetadata.
type pmSESRig struct {
	h      *Handler
	events *events.Bolt
	sup    *suppression.Bolt
	fetch  *fakeFetcher
}

func newPMSESRig(t *testing.T) *pmSESRig {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &pmSESRig{fetch: &fakeFetcher{certs: map[string][]byte{testCertURL: testSigner(t).certPEM}}}
	if r.events, err = events.OpenBolt(store.Bolt(db), nil); err != nil {
		t.Fatal(err)
	}
	if r.sup, err = suppression.OpenBolt(store.Bolt(db), suppression.PerUser, 0, time.Now); err != nil {
		t.Fatal(err)
	}
	err = r.events.Record(
		events.Event{At: time.Now().Add(-time.Hour), Kind: events.Relayed, Message: "Q-ses", User: "app",
			Recipient: "jane@example.com", ProviderID: "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
			Tags: ourTags(), Metadata: ourMetadata()},
		events.Event{At: time.Now().Add(-time.Hour), Kind: events.Relayed, Message: "Q-pm", User: "app",
			Recipient: "john@example.com", ProviderID: "883953f4-6105-42a2-a16a-77a8eac79483",
			Tags: ourTags(), Metadata: ourMetadata()})
	if err != nil {
		t.Fatal(err)
	}
	r.h = NewHandler(Options{
		Secrets: func(name string) (Secrets, error) {
			switch name {
			case "ses1":
				return sesSecrets, nil
			case "pm1":
				return postmarkSecrets, nil
			}
			return Secrets{}, nil
		},
		Verifiers: map[string]Verifier{
			"postmark": Postmark{},
			"ses":      NewSES(nil, r.fetch, slog.New(slog.DiscardHandler)),
		},
		Messages:     r.events,
		Events:       r.events,
		Suppressions: r.sup,
	})
	return r
}

func (r *pmSESRig) post(path string, body []byte, user, pass string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w
}

// providerEvents is the message's provider-reported events.
func (r *pmSESRig) providerEvents(t *testing.T, id string) []events.Event {
	t.Helper()
	all, err := r.events.ForMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for _, e := range all {
		if e.Kind != events.Relayed {
			out = append(out, e)
		}
	}
	return out
}

func (r *pmSESRig) suppressed(t *testing.T, addr string) *suppression.Entry {
	t.Helper()
	e, err := r.sup.Lookup("app", addr)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSESHardBounceThroughTheHandlerIsRecordedAndSuppresses(t *testing.T) {
	r := newPMSESRig(t)
	body := notification(t, "ses-bounce.json", nil)
	if w := r.post("/hooks/ses1/ses", body, "", ""); w.Code != http.StatusOK {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	evs := r.providerEvents(t, "Q-ses")
	if len(evs) != 1 || evs[0].Kind != events.ProviderBounced || evs[0].Recipient != "jane@example.com" ||
		evs[0].Reply != "550 5.1.1 <jane@example.com>... User" {
		t.Fatalf("events %+v", evs)
	}
	if e := r.suppressed(t, "jane@example.com"); e == nil || e.Reason != evs[0].Reply {
		t.Errorf("suppression %+v, want one with the bounce's reply", e)
	}
	// The same SNS message again: refused, nothing more recorded.
	if w := r.post("/hooks/ses1/ses", body, "", ""); w.Code != http.StatusConflict {
		t.Errorf("replay: got %d, want 409", w.Code)
	}
	if evs := r.providerEvents(t, "Q-ses"); len(evs) != 1 {
		t.Errorf("after the replay: %d events", len(evs))
	}
}

// failOnce fails the first Record.
type failOnce struct {
	Recorder
	failed bool
}

func (f *failOnce) Record(evs ...events.Event) error {
	if !f.failed {
		f.failed = true
		return errors.New("disk full")
	}
	return f.Recorder.Record(evs...)
}

func TestSESRetryAfterAFailedRecordIsTaken(t *testing.T) {
	r := newPMSESRig(t)
	r.h.opts.Events = &failOnce{Recorder: r.events}
	body := notification(t, "ses-bounce.json", nil)
	if w := r.post("/hooks/ses1/ses", body, "", ""); w.Code != http.StatusInternalServerError {
		t.Fatalf("got %d, want 500 so that SNS retries", w.Code)
	}
	// SNS's retry: the same message id, not a replay.
	if w := r.post("/hooks/ses1/ses", body, "", ""); w.Code != http.StatusOK {
		t.Fatalf("retry: got %d %s", w.Code, w.Body)
	}
	if evs := r.providerEvents(t, "Q-ses"); len(evs) != 1 {
		t.Errorf("recorded %+v, want the bounce once", evs)
	}
}

func TestSESRefusedRequestsRecordNothing(t *testing.T) {
	r := newPMSESRig(t)
	good := notification(t, "ses-bounce.json", nil)
	for name, c := range map[string]struct {
		path string
		body []byte
		want int
	}{
		"bad signature": {"/hooks/ses1/ses", bytes.Replace(good, []byte(`Permanent`), []byte(`Transient`), 1), 401},
		"stale": {"/hooks/ses1/ses", notification(t, "ses-bounce.json", func(m *snsMessage) {
			m.Timestamp = time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
		}), 401},
		"other smarthost": {"/hooks/pm1/ses", good, 401},
		"malformed":       {"/hooks/ses1/ses", []byte(`{"Type":`), 400},
	} {
		if w := r.post(c.path, c.body, "", ""); w.Code != c.want {
			t.Errorf("%s: got %d %s, want %d", name, w.Code, w.Body, c.want)
		}
	}
	if evs := r.providerEvents(t, "Q-ses"); len(evs) != 0 {
		t.Errorf("recorded %+v", evs)
	}
	if e := r.suppressed(t, "jane@example.com"); e != nil {
		t.Errorf("suppressed %+v", e)
	}
}

func TestPostmarkHardBounceThroughTheHandlerIsRecordedOnceAndSuppresses(t *testing.T) {
	r := newPMSESRig(t)
	body := mustRead(t, "testdata/postmark-bounce.json")
	for range 2 {
		if w := r.post("/hooks/pm1/postmark", body, postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword); w.Code != http.StatusOK {
			t.Fatalf("got %d %s", w.Code, w.Body)
		}
	}
	evs := r.providerEvents(t, "Q-pm")
	if len(evs) != 1 || evs[0].Kind != events.ProviderBounced || evs[0].Recipient != "john@example.com" {
		t.Fatalf("events %+v, want the bounce once", evs)
	}
	if e := r.suppressed(t, "john@example.com"); e == nil {
		t.Error("not suppressed")
	}
}

func TestPostmarkComplaintThroughTheHandlerSuppresses(t *testing.T) {
	r := newPMSESRig(t)
	// The documented complaint names another message; make it ours.
	body := bytes.Replace(mustRead(t, "testdata/postmark-spam-complaint.json"),
		[]byte("00000000-0000-0000-0000-000000000000"), []byte("883953f4-6105-42a2-a16a-77a8eac79483"), 1)
	if w := r.post("/hooks/pm1/postmark", body, postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword); w.Code != http.StatusOK {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if e := r.suppressed(t, "john@example.com"); e == nil || e.Kind != suppression.Complaint {
		t.Errorf("suppression %+v, want a complaint", e)
	}
}

func TestPostmarkWithWrongCredentialsThroughTheHandlerRecordsNothing(t *testing.T) {
	r := newPMSESRig(t)
	body := mustRead(t, "testdata/postmark-bounce.json")
	for name, path := range map[string]string{"wrong password": "/hooks/pm1/postmark", "other smarthost": "/hooks/ses1/postmark"} {
		pass := "guess"
		if name == "other smarthost" {
			pass = postmarkSecrets.PostmarkPassword
		}
		if w := r.post(path, body, postmarkSecrets.PostmarkUser, pass); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: got %d, want 401", name, w.Code)
		}
	}
	if evs := r.providerEvents(t, "Q-pm"); len(evs) != 0 {
		t.Errorf("recorded %+v", evs)
	}
	if e := r.suppressed(t, "john@example.com"); e != nil {
		t.Errorf("suppressed %+v", e)
	}
}
