package webhooks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"outbound/events"
)

// The Node and Python snippets of docs/webhooks.md, run as they are
// written against a request the worker really sent: they accept it, and
// refuse it with its body changed. Skipped when node or python3 is not
// installed.
func TestDocsSnippetsVerifyARealDelivery(t *testing.T) {
	doc, err := os.ReadFile("../docs/webhooks.md")
	must(t, err)
	snippet := func(lang string) string {
		m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/webhooks.md has no %s snippet", lang)
		}
		return string(m[1])
	}
	js, py := snippet("js"), snippet("python")

	var mu sync.Mutex
	var got *http.Request
	var body []byte
	srv, pool := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, body = r, b
		mu.Unlock()
	}))
	r := newRig(t, Policy{AllowPrivate: true})
	_, secret, err := r.wh.Register(context.Background(), "alice", srv.URL, nil)
	must(t, err)
	must(t, r.log.Record(events.Event{At: time.Now(), Kind: events.ProviderBounced, Message: "m1", User: "alice",
		Recipient: "bob@example.net", Reply: "550 5.1.1 unknown — ünïcode", Detail: "permanent"}))
	r.run(t, Options{RootCAs: pool})
	waitFor(t, "a delivery", func() bool { mu.Lock(); defer mu.Unlock(); return got != nil })

	headers := map[string]string{}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		headers[h] = got.Header.Get(h)
	}
	hj, _ := json.Marshal(headers)
	tampered := []byte(strings.Replace(string(body), "permanent", "temporary", 1))

	for _, c := range []struct {
		lang, cmd string
		args      []string
	}{
		{"node", "node", []string{"-e", js + `
const h = JSON.parse(process.env.HEADERS);
console.log(verifyWebhook(process.env.SECRET, h, Buffer.from(process.env.BODY, "base64")));`}},
		{"python", "python3", []string{"-c", py + `
import json, os
h = json.loads(os.environ["HEADERS"])
print("true" if verify_webhook(os.environ["SECRET"], h, base64.b64decode(os.environ["BODY"])) else "false")`}},
	} {
		t.Run(c.lang, func(t *testing.T) {
			if _, err := exec.LookPath(c.cmd); err != nil {
				t.Skipf("%s is not installed: the %s snippet of docs/webhooks.md is not checked", c.cmd, c.lang)
			}
			for b, want := range map[string]string{string(body): "true", string(tampered): "false"} {
				cmd := exec.Command(c.cmd, c.args...)
				cmd.Env = append(os.Environ(), "SECRET="+secret, "HEADERS="+string(hj),
					"BODY="+base64.StdEncoding.EncodeToString([]byte(b)))
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", c.cmd, err, out)
				}
				if strings.TrimSpace(string(out)) != want {
					t.Errorf("%s snippet says %s, want %s (tampered: %v)", c.lang, out, want, want == "false")
				}
			}
		})
	}
}
