package providerhooks

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"outbound/events"
)

var postmarkSecrets = Secrets{PostmarkUser: "hooks-ph1", PostmarkPassword: "s3cret-unique-to-this-smarthost"}

// postmarkPost is the request Postmark makes to a webhook URL with
// user:password in it: the credentials in an Authorization header.
func postmarkPost(t *testing.T, file, user, pass string) (*http.Request, []byte) {
	t.Helper()
	body := mustRead(t, "testdata/"+file)
	r := httptest.NewRequest(http.MethodPost, "/hooks/ph1/postmark", strings.NewReader(string(body)))
	if user != "" || pass != "" {
		r.SetBasicAuth(user, pass)
	}
	return r, body
}

func TestPostmarkHardBounceIsPermanentAndNamedByItsID(t *testing.T) {
	r, body := postmarkPost(t, "postmark-bounce.json", postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword)
	evs, err := eventsOf(Postmark{}.Verify(r, body, postmarkSecrets))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{Kind: events.ProviderBounced, ProviderID: "883953f4-6105-42a2-a16a-77a8eac79483",
		Recipient: "john@example.com", Reply: "550 5.1.1 The email account that you tried to reach does not exist.",
		Permanent: true, At: time.Date(2019, 11, 5, 16, 33, 54, 907025900, time.UTC),
		EventID: "postmark:4323372036854775807"}
	if len(evs) != 1 {
		t.Fatalf("got %d events: %+v", len(evs), evs)
	}
	if !evs[0].At.Equal(want.At) {
		t.Errorf("At = %v, want %v", evs[0].At, want.At)
	}
	evs[0].At = want.At
	if evs[0] != want {
		t.Errorf("event\n got %+v\nwant %+v", evs[0], want)
	}
}

func TestPostmarkSoftBounceIsTemporary(t *testing.T) {
	for _, typ := range []string{"SoftBounce", "Transient", "DnsError"} {
		body := []byte(strings.Replace(string(mustRead(t, "testdata/postmark-bounce.json")), `"HardBounce"`, `"`+typ+`"`, 1))
		r := httptest.NewRequest(http.MethodPost, "/hooks/ph1/postmark", strings.NewReader(string(body)))
		r.SetBasicAuth(postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword)
		evs, err := eventsOf(Postmark{}.Verify(r, body, postmarkSecrets))
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != events.ProviderBounced || evs[0].Permanent {
			t.Errorf("%s: %+v, want a temporary bounce", typ, evs)
		}
	}
}

func TestPostmarkAutoResponderRecordsNothing(t *testing.T) {
	body := []byte(strings.Replace(string(mustRead(t, "testdata/postmark-bounce.json")), `"HardBounce"`, `"AutoResponder"`, 1))
	r := httptest.NewRequest(http.MethodPost, "/hooks/ph1/postmark", strings.NewReader(string(body)))
	r.SetBasicAuth(postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword)
	evs, err := eventsOf(Postmark{}.Verify(r, body, postmarkSecrets))
	if err != nil || len(evs) != 0 {
		t.Errorf("got %+v, %v; want no events", evs, err)
	}
}

func TestPostmarkSpamComplaintAndDelivery(t *testing.T) {
	r, body := postmarkPost(t, "postmark-spam-complaint.json", postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword)
	evs, err := eventsOf(Postmark{}.Verify(r, body, postmarkSecrets))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != events.ProviderComplained || evs[0].Recipient != "john@example.com" || evs[0].EventID != "postmark:42" {
		t.Errorf("complaint: %+v", evs)
	}
	r, body = postmarkPost(t, "postmark-delivery.json", postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword)
	evs, err = eventsOf(Postmark{}.Verify(r, body, postmarkSecrets))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != events.ProviderDelivered || evs[0].Recipient != "john@example.com" ||
		evs[0].Reply != "250 2.0.0 OK 1480624905 l186si10190883ite.73 - gsmtp" ||
		evs[0].EventID != "postmark:delivery:00000000-0000-0000-0000-000000000000/john@example.com" {
		t.Errorf("delivery: %+v", evs)
	}
}

func TestPostmarkWrongCredentialsRefused(t *testing.T) {
	for name, c := range map[string][2]string{
		"none":           {"", ""},
		"wrong password": {postmarkSecrets.PostmarkUser, "guess"},
		"wrong user":     {"admin", postmarkSecrets.PostmarkPassword},
		"prefix":         {postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword[:5]},
	} {
		r, body := postmarkPost(t, "postmark-bounce.json", c[0], c[1])
		_, err := Postmark{}.Verify(r, body, postmarkSecrets)
		if StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}
}

func TestPostmarkWithoutConfiguredCredentialsRefusesEverything(t *testing.T) {
	// Even a request with empty credentials, which would "match".
	r, body := postmarkPost(t, "postmark-bounce.json", "", "")
	r.SetBasicAuth("", "")
	_, err := Postmark{}.Verify(r, body, Secrets{})
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("got %v, want 401", err)
	}
}

func TestPostmarkMalformedRefused(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":          `{"RecordType":`,
		"no RecordType":     `{"ID":1}`,
		"bounce without ID": `{"RecordType":"Bounce","Type":"HardBounce","MessageID":"x","Email":"a@b"}`,
		"delivery no rcpt":  `{"RecordType":"Delivery","MessageID":"x"}`,
	} {
		r := httptest.NewRequest(http.MethodPost, "/hooks/ph1/postmark", strings.NewReader(body))
		r.SetBasicAuth(postmarkSecrets.PostmarkUser, postmarkSecrets.PostmarkPassword)
		_, err := Postmark{}.Verify(r, []byte(body), postmarkSecrets)
		if StatusOf(err) != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
}

// FuzzParsePostmark: the parser never panics, and an event it returns
// always names a recipient and its event id.
func FuzzParsePostmark(f *testing.F) {
	for _, name := range []string{"postmark-bounce.json", "postmark-spam-complaint.json", "postmark-delivery.json"} {
		f.Add(mustReadF(f, "testdata/"+name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parsePostmark(b)
		if err == nil && e != nil && (e.Recipient == "" || e.EventID == "" || e.ProviderID == "") {
			t.Errorf("event without recipient, event id or message id: %+v", e)
		}
	})
}

func mustReadF(f *testing.F, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
