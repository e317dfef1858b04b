package sendapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/auth"
	"outbound/events"
	"outbound/internal/testutil"
	"outbound/queue"
	"outbound/quota"
	"outbound/relay"
	"outbound/route"
	"outbound/store"
)

const alice = "alice@example.com"

type fixedPolicy route.Policy

func (p fixedPolicy) Policy(*auth.User) route.Policy { return route.Policy(p) }

type harness struct {
	db    *bolt.DB
	q     *queue.Queue
	keys  *auth.APIKeys
	key   string
	srv   *httptest.Server
	users *auth.Store
	log   *events.Bolt
}

// start runs the send API over a real relay backend, queue, quota and key
// store in one bbolt file. lim is alice's sending limit.
func start(t *testing.T, lim quota.Limits) *harness {
	t.Helper()
	db := testutil.OpenDB(t)
	users, err := auth.NewStore(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	users.SetHashCost(4)
	if _, err := users.Add(alice, "correct horse battery", []string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.Add("bob@example.net", "correct horse battery", nil); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := quota.Open(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	log, err := events.OpenBolt(store.Bolt(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	backend := relay.New(relay.Options{
		Hostname: "relay.test", Users: users, Spool: q, Quota: qs, Routes: fixedPolicy{Limits: lim}, Events: log,
		MaxMessageBytes: 256 << 10, MaxRecipients: 10, MaxBytesInFlight: 8 << 20,
	})
	keys, err := auth.NewAPIKeys(store.Bolt(db))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := keys.Create(alice, "test")
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Keys: keys, Relay: backend, DB: store.Bolt(db), Hostname: "relay.test", MaxMessageBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &harness{db: db, q: q, keys: keys, key: key, srv: srv, users: users, log: log}
}

func (h *harness) post(t *testing.T, key string, body any, hdr ...string) (*http.Response, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/messages", bytes.NewReader(b))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not JSON: %s", raw)
	}
	return resp, out
}

func (h *harness) queued(t *testing.T) []*queue.Message {
	t.Helper()
	ms, err := h.q.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func errorOf(t *testing.T, out map[string]any) (code, field, msg string) {
	t.Helper()
	e, ok := out["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", out)
	}
	f, _ := e["field"].(string)
	return e["code"].(string), f, e["message"].(string)
}

var simple = map[string]any{"from": "Alice <alice@example.com>", "to": []string{"bob@example.net"}, "subject": "Hi", "text": "Hello."}

func TestSendQueuesThroughTheRelay(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	resp, out := h.post(t, h.key, simple)
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %v", resp.StatusCode, out)
	}
	ms := h.queued(t)
	if len(ms) != 1 || ms[0].ID != out["id"] || ms[0].User != alice || ms[0].From != alice {
		t.Fatalf("queued %+v, answer %v", ms, out)
	}
	body, _ := h.q.Body(ms[0].ID)
	if !strings.Contains(string(body), "with HTTPSA id "+ms[0].ID) || !strings.Contains(string(body), "Message-Id: "+out["message_id"].(string)) {
		t.Fatalf("queued message:\n%s", body)
	}
}

func TestSendWithoutOrWithBadKeyIs401(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	for _, key := range []string{"", "obk_nope", h.key + "x"} {
		resp, out := h.post(t, key, simple)
		if code, _, _ := errorOf(t, out); resp.StatusCode != 401 || code != "unauthorized" {
			t.Errorf("key %q: %d %v", key, resp.StatusCode, out)
		}
	}
	if len(h.queued(t)) != 0 {
		t.Fatal("queued without a valid key")
	}
}

func TestRevokedKeyIs401(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	if resp, _ := h.post(t, h.key, simple); resp.StatusCode != 202 {
		t.Fatal(resp.Status)
	}
	if _, err := h.keys.Revoke(alice, h.key[:12]); err != nil {
		t.Fatal(err)
	}
	if resp, _ := h.post(t, h.key, simple); resp.StatusCode != 401 {
		t.Fatalf("revoked key: %s", resp.Status)
	}
}

func TestAnotherUsersFromIs403(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	m := map[string]any{"from": "bob@example.net", "to": []string{"carol@example.net"}, "subject": "x", "text": "x"}
	resp, out := h.post(t, h.key, m)
	code, field, msg := errorOf(t, out)
	if resp.StatusCode != 403 || code != "forbidden" || field != "from" || !strings.Contains(msg, "is not allowed for user <alice@example.com>") {
		t.Fatalf("%d %v", resp.StatusCode, out)
	}
	if len(h.queued(t)) != 0 {
		t.Fatal("queued another user's From")
	}
}

func TestOverLimitIs429WithRetryAfter(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 1, PerDay: 10})
	if resp, _ := h.post(t, h.key, simple); resp.StatusCode != 202 {
		t.Fatal(resp.Status)
	}
	resp, out := h.post(t, h.key, simple)
	code, _, msg := errorOf(t, out)
	if resp.StatusCode != 429 || code != "rate_limited" || !strings.Contains(msg, "hourly limit of 1 reached for alice@example.com; next slot in") {
		t.Fatalf("%d %v", resp.StatusCode, out)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
}

func TestIdempotentRetryQueuesOnce(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	r1, a1 := h.post(t, h.key, simple, "Idempotency-Key", "order-42")
	r2, a2 := h.post(t, h.key, simple, "Idempotency-Key", "order-42")
	if r1.StatusCode != 202 || r2.StatusCode != 202 || a1["id"] != a2["id"] || a1["message_id"] != a2["message_id"] {
		t.Fatalf("first %d %v, retry %d %v", r1.StatusCode, a1, r2.StatusCode, a2)
	}
	if r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("the retry is not marked as replayed")
	}
	if n := len(h.queued(t)); n != 1 {
		t.Fatalf("%d messages queued, want 1", n)
	}
	// The same key for a different request is refused, not replayed.
	other := map[string]any{"from": alice, "to": []string{"carol@example.net"}, "subject": "other", "text": "x"}
	resp, out := h.post(t, h.key, other, "Idempotency-Key", "order-42")
	if code, _, _ := errorOf(t, out); resp.StatusCode != 422 || code != "idempotency_key_reused" {
		t.Fatalf("%d %v", resp.StatusCode, out)
	}
	// Another key is another message.
	if resp, _ := h.post(t, h.key, simple, "Idempotency-Key", "order-43"); resp.StatusCode != 202 {
		t.Fatal(resp.Status)
	}
	if n := len(h.queued(t)); n != 2 {
		t.Fatalf("%d messages queued, want 2", n)
	}
}

// The answer is written in the queue's transaction: it is in the bbolt
// file as soon as the 202 is (a restart keeps it).
func TestIdempotencyAnswerStoredWithTheMessage(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	_, a := h.post(t, h.key, simple, "Idempotency-Key", "k1")
	idem, _ := newIdempotency(store.Bolt(h.db), time.Now)
	got, err := idem.lookup(alice, "k1")
	if err != nil || got == nil || !strings.Contains(string(got.Body), a["id"].(string)) {
		t.Fatalf("stored %+v, %v", got, err)
	}
	// After 24 hours it is gone.
	later, _ := newIdempotency(store.Bolt(h.db), func() time.Time { return time.Now().Add(IdempotencyTTL + time.Minute) })
	if got, _ := later.lookup(alice, "k1"); got != nil {
		t.Fatal("an answer older than 24 h is still replayed")
	}
	if err := later.Purge(); err != nil {
		t.Fatal(err)
	}
	if got, _ := idem.lookup(alice, "k1"); got != nil {
		t.Fatal("Purge kept an expired answer")
	}
}

func TestInvalidRequestsNameTheField(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	for _, tc := range []struct {
		body   any
		status int
		field  string
	}{
		{map[string]any{"from": "nope", "to": []string{"b@example.net"}, "text": "x"}, 422, "from"},
		{map[string]any{"from": alice, "to": []string{"b@"}, "text": "x"}, 422, "to[0]"},
		{map[string]any{"from": alice, "to": []string{"b@example.net"}}, 422, "text"},
		{map[string]any{"from": alice, "to": []string{"b@example.net"}, "text": "x", "headers": map[string]string{"Content-Type": "text/html"}}, 422, "headers.Content-Type"},
		{map[string]any{"from": alice, "to": []string{"b@example.net"}, "text": "x", "attachments": []map[string]string{{"filename": "a", "content": "!!"}}}, 422, "attachments[0].content"},
		{map[string]any{"from": alice, "to": []string{"b@example.net"}, "text": "x", "colour": "red"}, 400, "colour"},
		{map[string]any{"from": alice, "to": "b@example.net", "text": "x"}, 400, "to"},
	} {
		resp, out := h.post(t, h.key, tc.body)
		_, field, _ := errorOf(t, out)
		if resp.StatusCode != tc.status || field != tc.field {
			t.Errorf("%v: %d %v, want %d naming %s", tc.body, resp.StatusCode, out, tc.status, tc.field)
		}
	}
}

func TestTooLargeIs413(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	big := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 300<<10))
	m := map[string]any{"from": alice, "to": []string{"b@example.net"}, "text": "x",
		"attachments": []map[string]string{{"filename": "big.bin", "content": big}}}
	resp, out := h.post(t, h.key, m)
	if code, _, _ := errorOf(t, out); resp.StatusCode != 413 || code != "too_large" {
		t.Fatalf("%d %v", resp.StatusCode, out)
	}
}

// The built message parses back with the standard library: the MIME
// tree, charsets, encoded headers and byte-identical attachments.
func TestBuildMIMEParsesBack(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nnot really a png \x00\xff")
	pdf := bytes.Repeat([]byte("%PDF-1.4 \x00\x01\x02"), 200)
	long := strings.Repeat("ü", 1500) // one 3000-octet line
	r := &Request{
		From: "Zoë Example <alice@example.com>", To: []string{"Bob <bob@example.net>"}, Cc: []string{"carol@example.net"},
		Bcc: []string{"dave@example.net"}, ReplyTo: []string{"help@example.com"},
		Subject: "Grüße – your receipt", Text: "Hello\nwörld\n" + long, HTML: `<p>Hi <img src="cid:logo"></p>`,
		Headers: map[string]string{"X-Campaign": "spring é"},
		Attachments: []Attachment{
			{Filename: "logo.png", ContentType: "image/png", Content: base64.StdEncoding.EncodeToString(png), ContentID: "logo"},
			{Filename: "reçu.pdf", ContentType: "application/pdf", Content: base64.StdEncoding.EncodeToString(pdf)},
		},
	}
	b, fe := build(r, "relay.test", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if fe != nil {
		t.Fatal(fe)
	}
	if b.from != alice || strings.Join(b.rcpts, ",") != "bob@example.net,carol@example.net,dave@example.net" {
		t.Fatalf("envelope %s %v", b.from, b.rcpts)
	}
	for i, line := range strings.Split(string(b.body), "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets", i, len(line))
		}
	}
	if bytes.Contains(b.body, []byte("dave@")) {
		t.Fatal("Bcc is in the message")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(b.body))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	if s, _ := dec.DecodeHeader(msg.Header.Get("Subject")); s != r.Subject {
		t.Errorf("Subject %q", s)
	}
	if s, _ := dec.DecodeHeader(msg.Header.Get("X-Campaign")); s != "spring é" {
		t.Errorf("X-Campaign %q", s)
	}
	from, err := msg.Header.AddressList("From")
	if err != nil || from[0].Name != "Zoë Example" || from[0].Address != alice {
		t.Errorf("From %v %v", from, err)
	}
	if msg.Header.Get("Message-Id") != b.messageID || msg.Header.Get("Mime-Version") != "1.0" {
		t.Errorf("Message-Id %q MIME-Version %q", msg.Header.Get("Message-Id"), msg.Header.Get("Mime-Version"))
	}

	// mixed [ related [ alternative [ text, html ], logo ], pdf ]
	mixed := parts(t, msg.Header.Get("Content-Type"), msg.Body, "multipart/mixed", 2)
	related := parts(t, mixed[0].Header.Get("Content-Type"), bytes.NewReader(mixed[0].body), "multipart/related", 2)
	alt := parts(t, related[0].Header.Get("Content-Type"), bytes.NewReader(related[0].body), "multipart/alternative", 2)
	if ct := alt[0].Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "utf-8") {
		t.Errorf("text part %q", ct)
	}
	if got := string(alt[0].decoded); got != strings.ReplaceAll(r.Text, "\n", "\r\n") {
		t.Errorf("text part decodes to %q", got)
	}
	if got := string(alt[1].decoded); got != r.HTML {
		t.Errorf("html part decodes to %q", got)
	}
	logo := related[1]
	if logo.Header.Get("Content-Id") != "<logo>" || !bytes.Equal(logo.decoded, png) || !strings.HasPrefix(logo.Header.Get("Content-Disposition"), "inline") {
		t.Errorf("inline image: %v", logo.Header)
	}
	att := mixed[1]
	// go-message writes a non-ASCII filename as an RFC 2047 word inside
	// the quotes, as the common mail clients write and read it.
	if name, _ := dec.DecodeHeader(att.FileName()); name != "reçu.pdf" || !bytes.Equal(att.decoded, pdf) || !strings.HasPrefix(att.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("attachment %q: %v", att.FileName(), att.Header)
	}
}

type part struct {
	*multipart.Part
	body    []byte // as written (multipart keeps it encoded)
	decoded []byte
}

func parts(t *testing.T, contentType string, r io.Reader, want string, n int) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != want {
		t.Fatalf("Content-Type %q, want %s", contentType, want)
	}
	mr := multipart.NewReader(r, params["boundary"])
	var out []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(p)
		pt := part{Part: p, body: raw, decoded: raw}
		switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
		case "base64":
			pt.decoded, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(raw)))
		case "quoted-printable":
			pt.decoded, err = io.ReadAll(quotedPrintable(raw))
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pt)
	}
	if len(out) != n {
		t.Fatalf("%s has %d parts, want %d", want, len(out), n)
	}
	return out
}

// No part of the key reaches the message: recipients read its Received
// header.
func TestKeyNotInTheMessage(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	_, out := h.post(t, h.key, simple)
	body, _ := h.q.Body(out["id"].(string))
	if bytes.Contains(body, []byte(h.key[:12])) || bytes.Contains(body, []byte(h.key[4:12])) {
		t.Fatalf("the queued message contains the key's prefix:\n%s", body)
	}
}

func TestWrongMethodIsJSON405(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	resp, err := http.Get(h.srv.URL + "/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if json.NewDecoder(resp.Body).Decode(&out) != nil || resp.StatusCode != 405 {
		t.Fatalf("GET /v1/messages: %s %v", resp.Status, out)
	}
	if code, _, _ := errorOf(t, out); code != "method_not_allowed" {
		t.Fatalf("%v", out)
	}
}
