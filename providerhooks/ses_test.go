package providerhooks

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/events"
)

const (
	testTopic   = "arn:aws:sns:us-west-2:123456789012:MyTopic"
	testCertURL = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-test.pem"
)

// snsSigner is a test stand-in for SNS: an RSA key and a self-signed
// certificate for it, served at testCertURL by its fetcher.
type snsSigner struct {
	key     *rsa.PrivateKey
	certPEM []byte
}

var (
	signerOnce sync.Once
	signer     *snsSigner
)

// testSigner makes the key once per test binary (RSA generation is slow).
func testSigner(t *testing.T) *snsSigner {
	t.Helper()
	signerOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "sns.amazonaws.com"},
			// Valid whatever a test's clock says.
			NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
			NotAfter:  time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		signer = &snsSigner{key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	})
	return signer
}

// sign fills m's Signature for its SignatureVersion with the test key.
func (s *snsSigner) sign(t *testing.T, m *snsMessage) {
	t.Helper()
	text, err := m.stringToSign()
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	if m.SignatureVersion == "1" {
		h := sha1.Sum([]byte(text))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, h[:])
	} else {
		h := sha256.Sum256([]byte(text))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, h[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
}

// fakeFetcher serves the test certificate and answers subscription
// confirmations, recording every URL asked for.
type fakeFetcher struct {
	mu    sync.Mutex
	certs map[string][]byte
	fail  error
	got   []string
}

func (f *fakeFetcher) Get(_ context.Context, url string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, url)
	if f.fail != nil {
		return nil, f.fail
	}
	if b, ok := f.certs[url]; ok {
		return b, nil
	}
	if strings.Contains(url, "Action=ConfirmSubscription") {
		return []byte("<ConfirmSubscriptionResponse/>"), nil
	}
	return nil, errors.New("404 Not Found")
}

func (f *fakeFetcher) urls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func newTestSES(t *testing.T) (*SES, *fakeFetcher) {
	f := &fakeFetcher{certs: map[string][]byte{testCertURL: testSigner(t).certPEM}}
	return NewSES(nil, f, slog.New(slog.DiscardHandler)), f
}

// notification wraps the SES notification in testdata/file in a signed SNS
// notification, as SNS would POST it.
func notification(t *testing.T, file string, edit func(*snsMessage)) []byte {
	t.Helper()
	msg, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	m := &snsMessage{
		Type:             snsNotification,
		MessageID:        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324-" + file,
		TopicArn:         testTopic,
		Message:          string(msg),
		Timestamp:        time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		SignatureVersion: "2",
		SigningCertURL:   testCertURL,
	}
	if edit != nil {
		edit(m)
	}
	testSigner(t).sign(t, m)
	return snsJSON(t, m)
}

func snsJSON(t *testing.T, m *snsMessage) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(body []byte) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/webhooks/ses/test", strings.NewReader(string(body)))
}

var sesSecrets = Secrets{SNSTopicARN: testTopic}

func TestSESBounceIsAPermanentBounceMatchedByMessageIDAndSESID(t *testing.T) {
	v, _ := newTestSES(t)
	body := notification(t, "ses-bounce.json", nil)
	evs, err := eventsOf(v.Verify(post(body), body, sesSecrets))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	want := Event{
		Kind: events.ProviderBounced, MessageID: "custom-message-ID",
		ProviderID: "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
		Recipient:  "jane@example.com", Reply: "550 5.1.1 <jane@example.com>... User", Permanent: true,
		At:      time.Date(2016, 1, 27, 14, 59, 38, 237e6, time.UTC),
		EventID: "ses:00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000/jane@example.com",
	}
	if !e.At.Equal(want.At) {
		t.Errorf("At = %v, want %v", e.At, want.At)
	}
	e.At = want.At
	if e != want {
		t.Errorf("event\n got %+v\nwant %+v", e, want)
	}
}

func TestSESComplaintAndDelivery(t *testing.T) {
	v, _ := newTestSES(t)
	body := notification(t, "ses-complaint.json", nil)
	evs, err := eventsOf(v.Verify(post(body), body, sesSecrets))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != events.ProviderComplained || evs[0].Recipient != "richard@example.com" || evs[0].Reply != "abuse" {
		t.Errorf("complaint: %+v", evs)
	}
	body = notification(t, "ses-delivery.json", nil)
	evs, err = eventsOf(v.Verify(post(body), body, sesSecrets))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != events.ProviderDelivered || evs[0].Recipient != "jane@example.com" ||
		evs[0].MessageID != "custom-message-ID@example.com" || evs[0].Reply != "250 ok:  Message 64111812 accepted" {
		t.Errorf("delivery: %+v", evs)
	}
}

func TestSESTransientAndSuppressedBounces(t *testing.T) {
	v, _ := newTestSES(t)
	transient := notification(t, "ses-bounce.json", func(m *snsMessage) {
		m.MessageID += "-transient"
		m.Message = strings.Replace(m.Message, `"bounceType": "Permanent"`, `"bounceType": "Transient"`, 1)
	})
	evs, err := eventsOf(v.Verify(post(transient), transient, sesSecrets))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != events.ProviderBounced || evs[0].Permanent {
		t.Errorf("transient bounce: %+v, want a temporary bounce", evs)
	}
	suppressed := notification(t, "ses-bounce.json", func(m *snsMessage) {
		m.MessageID += "-suppressed"
		m.Message = strings.Replace(m.Message, `"bounceSubType": "General"`, `"bounceSubType": "Suppressed"`, 1)
	})
	evs, err = eventsOf(v.Verify(post(suppressed), suppressed, sesSecrets))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != events.ProviderDropped || !evs[0].Permanent {
		t.Errorf("suppressed bounce: %+v, want a permanent drop", evs)
	}
}

func TestSESSignatureVersion1(t *testing.T) {
	v, _ := newTestSES(t)
	body := notification(t, "ses-delivery.json", func(m *snsMessage) { m.SignatureVersion = "1" })
	if _, err := v.Verify(post(body), body, sesSecrets); err != nil {
		t.Fatal(err)
	}
}

func TestSESSubjectIsSigned(t *testing.T) {
	v, _ := newTestSES(t)
	subject := "Amazon SES Email Event Notification"
	body := notification(t, "ses-delivery.json", func(m *snsMessage) { m.Subject = &subject })
	if _, err := v.Verify(post(body), body, sesSecrets); err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(body), subject, "Changed", 1)
	_, err := v.Verify(post([]byte(tampered)), []byte(tampered), sesSecrets)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("changed Subject: %v, want 401", err)
	}
}

func TestSESBadSignatureRefused(t *testing.T) {
	v, _ := newTestSES(t)
	body := notification(t, "ses-bounce.json", nil)
	// The bounce made into a delivery after signing.
	tampered := strings.Replace(string(body), `\"notificationType\": \"Bounce\"`, `\"notificationType\": \"Delivery\"`, 1)
	if tampered == string(body) {
		t.Fatal("test did not change the message")
	}
	_, err := v.Verify(post([]byte(tampered)), []byte(tampered), sesSecrets)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("tampered message: %v, want 401", err)
	}
	// Signed by another key.
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	m := &snsMessage{}
	json.Unmarshal(body, m)
	(&snsSigner{key: other}).sign(t, m)
	forged := snsJSON(t, m)
	_, err = v.Verify(post(forged), forged, sesSecrets)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("other key: %v, want 401", err)
	}
}

func TestSESCertificateFromAnotherHostRefusedBeforeFetching(t *testing.T) {
	for _, u := range []string{
		"http://sns.us-west-2.amazonaws.com/cert.pem",
		"https://sns.us-west-2.amazonaws.com.evil.example/cert.pem",
		"https://evil.example/sns.us-west-2.amazonaws.com/cert.pem",
		"https://s3.amazonaws.com/cert.pem",
		"https://sns.us-west-2.amazonaws.com:8443/cert.pem",
		"https://user@sns.us-west-2.amazonaws.com/cert.pem",
	} {
		v, f := newTestSES(t)
		body := notification(t, "ses-bounce.json", func(m *snsMessage) { m.SigningCertURL = u })
		_, err := v.Verify(post(body), body, sesSecrets)
		if StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", u, err)
		}
		if got := f.urls(); len(got) != 0 {
			t.Errorf("%s: fetched %v", u, got)
		}
	}
	if _, err := CheckSNSURL("https://sns.cn-north-1.amazonaws.com.cn/c.pem"); err != nil {
		t.Errorf("China region refused: %v", err)
	}
}

func TestSNSFetcherRefusesOtherHostsItself(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached %s", r.URL)
	}))
	defer srv.Close()
	if _, err := NewSNSFetcher(time.Second).Get(context.Background(), srv.URL+"/cert.pem"); err == nil {
		t.Error("fetched from a non-SNS host")
	}
}

func TestSESCertificateFetchedOncePerURL(t *testing.T) {
	v, f := newTestSES(t)
	for _, file := range []string{"ses-bounce.json", "ses-complaint.json", "ses-delivery.json"} {
		body := notification(t, file, nil)
		if _, err := v.Verify(post(body), body, sesSecrets); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.urls(); len(got) != 1 || got[0] != testCertURL {
		t.Errorf("fetched %v, want the certificate once", got)
	}
}

func TestSESCertificateFetchFailureIsNotARefusal(t *testing.T) {
	v, f := newTestSES(t)
	f.fail = errors.New("connection refused")
	body := notification(t, "ses-bounce.json", nil)
	_, err := v.Verify(post(body), body, sesSecrets)
	if err == nil || StatusOf(err) != http.StatusInternalServerError {
		t.Fatalf("got %v, want a 500 so that SNS retries", err)
	}
	f.fail = nil
	if _, err := v.Verify(post(body), body, sesSecrets); err != nil {
		t.Errorf("SNS's retry after the fetch came back: %v", err)
	}
}

func TestSESExpiredCertificateRefused(t *testing.T) {
	f := &fakeFetcher{certs: map[string][]byte{testCertURL: testSigner(t).certPEM}}
	later := time.Date(2101, 1, 1, 0, 0, 0, 0, time.UTC)
	v := NewSES(func() time.Time { return later }, f, slog.New(slog.DiscardHandler))
	body := notification(t, "ses-bounce.json", func(m *snsMessage) { m.Timestamp = later.Format(time.RFC3339) })
	_, err := v.Verify(post(body), body, sesSecrets)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("got %v, want 401", err)
	}
}

func TestSESStaleAndFutureTimestampsRefused(t *testing.T) {
	v, _ := newTestSES(t)
	for name, at := range map[string]time.Time{
		"stale":  time.Now().Add(-SNSMaxAge - time.Minute),
		"future": time.Now().Add(MaxAge + time.Minute),
	} {
		body := notification(t, "ses-bounce.json", func(m *snsMessage) {
			m.Timestamp = at.UTC().Format(time.RFC3339Nano)
		})
		_, err := v.Verify(post(body), body, sesSecrets)
		if StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}
	// An SNS retry 50 minutes after publishing is still taken.
	body := notification(t, "ses-bounce.json", func(m *snsMessage) {
		m.Timestamp = time.Now().Add(-50 * time.Minute).UTC().Format(time.RFC3339Nano)
	})
	if _, err := v.Verify(post(body), body, sesSecrets); err != nil {
		t.Errorf("50-minute-old retry: %v", err)
	}
}

func TestSESReplayRefused(t *testing.T) {
	v, _ := newTestSES(t)
	body := notification(t, "ses-bounce.json", nil)
	if _, err := v.Verify(post(body), body, sesSecrets); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(post(body), body, sesSecrets)
	if StatusOf(err) != http.StatusConflict {
		t.Errorf("replay: %v, want 409", err)
	}
}

func TestSESOtherTopicRefused(t *testing.T) {
	v, f := newTestSES(t)
	body := notification(t, "ses-bounce.json", func(m *snsMessage) {
		m.TopicArn = "arn:aws:sns:us-west-2:999999999999:TheirTopic"
	})
	for name, s := range map[string]Secrets{"other topic": sesSecrets, "no topic configured": {}} {
		_, err := v.Verify(post(body), body, s)
		if StatusOf(err) != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}
	if got := f.urls(); len(got) != 0 {
		t.Errorf("fetched %v for a refused topic", got)
	}
}

func TestSESMalformedRefused(t *testing.T) {
	v, _ := newTestSES(t)
	for name, body := range map[string][]byte{
		"not JSON":         []byte("{"),
		"raw SES message":  mustRead(t, "testdata/ses-bounce.json"),
		"unknown type":     notificationRaw(t, func(m *snsMessage) { m.Type = "Other" }),
		"bad timestamp":    notification(t, "ses-bounce.json", func(m *snsMessage) { m.Timestamp = "yesterday" }),
		"Message not JSON": notification(t, "ses-bounce.json", func(m *snsMessage) { m.MessageID, m.Message = "m1", "{" }),
		"bounce no recipts": notification(t, "ses-bounce.json", func(m *snsMessage) {
			m.MessageID, m.Message = "m2", `{"notificationType":"Bounce","mail":{"messageId":"x"},"bounce":{}}`
		}),
	} {
		_, err := v.Verify(post(body), body, sesSecrets)
		if StatusOf(err) != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
}

// notificationRaw is a notification that cannot be signed (an unknown
// type has no string to sign), with a dummy signature.
func notificationRaw(t *testing.T, edit func(*snsMessage)) []byte {
	m := &snsMessage{Type: snsNotification, MessageID: "x", TopicArn: testTopic, Message: "{}",
		Timestamp: time.Now().UTC().Format(time.RFC3339), SignatureVersion: "2", Signature: "AAAA", SigningCertURL: testCertURL}
	edit(m)
	return snsJSON(t, m)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subscription is testdata's SubscriptionConfirmation, timestamped now and
// signed with the test key.
func subscription(t *testing.T, edit func(*snsMessage)) []byte {
	t.Helper()
	m := &snsMessage{}
	if err := json.Unmarshal(mustRead(t, "testdata/sns-subscription-confirmation.json"), m); err != nil {
		t.Fatal(err)
	}
	m.Timestamp = time.Now().UTC().Format(time.RFC3339Nano)
	m.SigningCertURL = testCertURL
	if edit != nil {
		edit(m)
	}
	testSigner(t).sign(t, m)
	return snsJSON(t, m)
}

func TestSESSubscriptionConfirmedByGETOnSubscribeURL(t *testing.T) {
	v, f := newTestSES(t)
	body := subscription(t, nil)
	evs, err := eventsOf(v.Verify(post(body), body, sesSecrets))
	if err != nil || len(evs) != 0 {
		t.Fatalf("got %v, %v; want confirmed with no events", evs, err)
	}
	got := f.urls()
	if len(got) != 2 || !strings.HasPrefix(got[1], "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&") {
		t.Errorf("fetched %v, want the certificate then the SubscribeURL", got)
	}
}

func TestSESSubscriptionToAnotherHostNotConfirmed(t *testing.T) {
	v, f := newTestSES(t)
	body := subscription(t, func(m *snsMessage) {
		m.SubscribeURL = "https://internal.example/?Action=ConfirmSubscription"
	})
	_, err := v.Verify(post(body), body, sesSecrets)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("got %v, want 401", err)
	}
	for _, u := range f.urls() {
		if strings.Contains(u, "internal.example") {
			t.Errorf("fetched %s", u)
		}
	}
}

func TestSESSubscriptionOfAnotherTopicNotConfirmed(t *testing.T) {
	v, f := newTestSES(t)
	body := subscription(t, func(m *snsMessage) { m.TopicArn = "arn:aws:sns:us-west-2:999999999999:TheirTopic" })
	_, err := v.Verify(post(body), body, sesSecrets)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("got %v, want 401", err)
	}
	if got := f.urls(); len(got) != 0 {
		t.Errorf("fetched %v", got)
	}
}

// FuzzParseSNSAndSES feeds both parsers of an SNS POST: neither may panic,
// and a parsed SNS message always has a string to sign.
func FuzzParseSNSAndSES(f *testing.F) {
	for _, name := range []string{"ses-bounce.json", "ses-complaint.json", "ses-delivery.json", "sns-subscription-confirmation.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseSESNotification("id", b)
		if m, err := parseSNS(b); err == nil {
			if _, err := m.stringToSign(); err != nil {
				t.Errorf("parsed, but no string to sign: %v", err)
			}
		}
	})
}
