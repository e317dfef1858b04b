package providerhooks

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"outbound/suppression"
)

// eventsOf is the events of a Verify, for tests that check only them.
func eventsOf(v Verified, err error) ([]Event, error) { return v.Events, err }

// failOnceSuppressor fails the first Add or Complained.
type failOnceSuppressor struct {
	Suppressor
	failed bool
}

func (f *failOnceSuppressor) fail() error {
	if f.failed {
		return nil
	}
	f.failed = true
	return errors.New("disk full")
}

func (f *failOnceSuppressor) Add(e suppression.Entry) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Suppressor.Add(e)
}

func (f *failOnceSuppressor) Complained(user, addr, reason, message string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Suppressor.Complained(user, addr, reason, message)
}

// retryCase is one provider's request, over a Handler with real bbolt
// stores.
type retryCase struct {
	// h is the Handler, whose Events or Suppressions the test breaks.
	h *Handler
	// post sends the very same request each time, as a provider's retry
	// does.
	post func() *httptest.ResponseRecorder
	// stored counts the provider events stored for the message.
	stored func() int
	// want is how many events the request stores.
	want int
	// suppressed is the recipient the request suppresses.
	suppressed func() *suppression.Entry
	// replay is the answer to the request again after it was stored:
	// 409 for the signed providers; Postmark signs nothing, so its
	// request is taken and its event skipped by its id.
	replay int
}

// retryCases are a request per provider, by the path element of
// Verifiers.
func retryCases(t *testing.T) map[string]func() retryCase {
	signed := func(provider string, request func(r *rig) ([]byte, http.Header), want int, addr string) func() retryCase {
		return func() retryCase {
			r := newRig(t)
			body, h := request(r)
			return retryCase{
				h:          r.h,
				post:       func() *httptest.ResponseRecorder { return r.post("/hooks/mg/"+provider, body, h) },
				stored:     func() int { return len(r.timeline()) },
				want:       want,
				suppressed: func() *suppression.Entry { return r.suppressed(addr) },
				replay:     http.StatusConflict,
			}
		}
	}
	pmSES := func(path string, body []byte, user, pass, message, addr string, replay int) func() retryCase {
		return func() retryCase {
			r := newPMSESRig(t)
			return retryCase{
				h:          r.h,
				post:       func() *httptest.ResponseRecorder { return r.post(path, body, user, pass) },
				stored:     func() int { return len(r.providerEvents(t, message)) },
				want:       1,
				suppressed: func() *suppression.Entry { return r.suppressed(t, addr) },
				replay:     replay,
			}
		}
	}
	return map[string]func() retryCase{
		"mailgun": signed("mailgun", func(r *rig) ([]byte, http.Header) {
			return mailgunSigned(t, testdata(t, "mailgun_failed_permanent.json"), "key-mailgun-test", r.now, "retried"), nil
		}, 1, "alice@example.com"),
		// deferred, delivered, bounce, dropped, spamreport: those stored
		// before the failure are skipped on the retry by their ids.
		"sendgrid": signed("sendgrid", func(r *rig) ([]byte, http.Header) {
			body := testdata(t, "sendgrid_events.json")
			return body, r.sendGridSigned(body, r.now)
		}, 5, "example@test.com"),
		"generic": signed("generic", func(r *rig) ([]byte, http.Header) {
			body := testdata(t, "generic_bounced.json")
			return body, r.genericSigned(body, r.now, "generic-test-secret")
		}, 1, "gone@example.com"),
		"postmark": pmSES("/hooks/pm1/postmark", mustRead(t, "testdata/postmark-bounce.json"),
			postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword, "Q-pm", "john@example.com", http.StatusOK),
		"ses": pmSES("/hooks/ses1/ses", notification(t, "ses-bounce.json", nil), "", "", "Q-ses", "jane@example.com", http.StatusConflict),
	}
}

// A request answered 500 because storing its events failed is retried by
// its provider as it was; the retry is taken (not refused as a replay,
// 409, which no provider retries) and stores each event once. The same
// request after that is a replay again.
func TestRetryAfterAStorageFailureIsTakenAndStoresOnce(t *testing.T) {
	stores := map[string]func(h *Handler){
		"events store": func(h *Handler) { h.opts.Events = &failOnce{Recorder: h.opts.Events} },
		"suppressions": func(h *Handler) { h.opts.Suppressions = &failOnceSuppressor{Suppressor: h.opts.Suppressions} },
	}
	for provider, mk := range retryCases(t) {
		for store, breakIt := range stores {
			t.Run(provider+" "+store, func(t *testing.T) {
				c := mk()
				breakIt(c.h)
				if w := c.post(); w.Code != http.StatusInternalServerError {
					t.Fatalf("with the %s failing: got %d %s, want 500", store, w.Code, w.Body)
				}
				if n := c.stored(); n >= c.want {
					t.Fatalf("the failed request stored %d events, want fewer than %d", n, c.want)
				}
				w := c.post()
				if w.Code != http.StatusOK {
					t.Fatalf("the provider's retry: got %d %s, want 200", w.Code, w.Body)
				}
				if n := c.stored(); n != c.want {
					t.Fatalf("after the retry: %d events stored, want %d, each once", n, c.want)
				}
				if c.suppressed() == nil {
					t.Error("the retry did not suppress the recipient")
				}
				w = c.post()
				if w.Code != c.replay {
					t.Fatalf("the request again after success: got %d %s, want %d", w.Code, w.Body, c.replay)
				}
				if c.replay == http.StatusOK && !strings.Contains(w.Body.String(), `"duplicates":1`) {
					t.Errorf("the request again after success: %s, want its event a duplicate", w.Body)
				}
				if n := c.stored(); n != c.want {
					t.Fatalf("after the replay: %d events stored, want %d", n, c.want)
				}
			})
		}
	}
}

// Every provider of the Verifiers table has its case above: a new one gets
// the retry test too.
func TestEveryProviderHasARetryCase(t *testing.T) {
	cases := retryCases(t)
	for provider := range Verifiers(NewGuard(nil, 0)) {
		if _, ok := cases[provider]; !ok {
			t.Errorf("provider %q has no case in retryCases", provider)
		}
	}
}

// A refused replay releases nothing: the request stays refused after a
// copy of it was answered 409.
func TestReplayRefusedTwice(t *testing.T) {
	for provider, mk := range retryCases(t) {
		c := mk()
		if c.replay != http.StatusConflict {
			continue
		}
		if w := c.post(); w.Code != http.StatusOK {
			t.Fatalf("%s: got %d %s", provider, w.Code, w.Body)
		}
		for i := range 2 {
			if w := c.post(); w.Code != http.StatusConflict {
				t.Fatalf("%s: replay %d: got %d %s, want 409", provider, i+1, w.Code, w.Body)
			}
		}
	}
}

// The generic signature is hex, compared without regard to case: the same
// signature in capitals is the same request, refused as a replay.
func TestGenericReplayInCapitalsRefused(t *testing.T) {
	r := newRig(t)
	body := testdata(t, "generic_bounced.json")
	h := r.genericSigned(body, r.now, "generic-test-secret")
	if w := r.post("/hooks/mg/generic", body, h); w.Code != http.StatusOK {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	r.now = r.now.Add(time.Minute)
	h.Set(GenericSignatureHeader, strings.ToUpper(h.Get(GenericSignatureHeader)))
	if w := r.post("/hooks/mg/generic", body, h); w.Code != http.StatusConflict {
		t.Fatalf("the signature in capitals: got %d %s, want 409", w.Code, w.Body)
	}
}
