package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"outbound/events"
	"outbound/store"
)

// EventWriter records an event in another owner's transaction
// (events.Bolt): disabling an endpoint and telling its user are one write.
type EventWriter interface {
	Put(tx store.Tx, evs ...events.Event) error
	Counted(evs []events.Event)
}

var _ EventWriter = (*events.Bolt)(nil)

// Options configures the Worker.
type Options struct {
	// Policy is the rule for URLs, applied again at every connection.
	Policy Policy
	// Events records webhook_disabled in the user's log; required.
	Events EventWriter
	// Timeout bounds one request, from dialing to the response's status
	// (default 15 s).
	Timeout time.Duration
	// RootCAs verifies endpoints' certificates; nil: the system's roots.
	// Tests set it to trust their httptest server.
	RootCAs *x509.CertPool
	// MaxAge is how long a delivery is retried from its first attempt
	// before the endpoint is disabled (default 72 h, three days).
	MaxAge time.Duration
	// Backoff is the wait after a delivery's nth failed attempt; nil:
	// Backoff. Tests shorten it.
	Backoff func(attempts int) time.Duration
	Logger  *slog.Logger
}

// Backoff is the wait after a delivery's attempts-th failed attempt,
// with up to 10% added at random so that retries do not come in step:
//
//	after attempt   1    2    3    4   5   6 and later
//	wait            5s   5m   30m  2h  5h  10h
//
// From the first attempt the retries come at about 5s, 5m, 35m, 2h35m,
// 7h35m, 17h35m, 27h35m, ..., 67h35m: eleven attempts in three days. A
// failure whose next retry would fall past MaxAge disables the endpoint.
func Backoff(attempts int) time.Duration {
	schedule := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}
	d := schedule[min(max(attempts, 1), len(schedule))-1]
	return d + rand.N(d/10+1)
}

// responseLimit is as much of a failed response's body as is read, for
// the reason logged and shown when the endpoint is disabled.
const responseLimit = 512

// maxParallel is how many endpoints are sent to at once: a slow one does
// not hold up the others, and a user with many cannot take every socket.
const maxParallel = 8

// Worker sends the queued deliveries.
type Worker struct {
	store  *Bolt
	opts   Options
	client *http.Client
}

// NewWorker returns a Worker sending store's deliveries.
func NewWorker(store *Bolt, opts Options) *Worker {
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 72 * time.Hour
	}
	if opts.Backoff == nil {
		opts.Backoff = Backoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	transport := &http.Transport{
		// Never through a proxy: the address checked must be the one
		// connected to.
		Proxy:                 nil,
		DialContext:           opts.Policy.dialContext(&net.Dialer{Timeout: opts.Timeout}),
		TLSClientConfig:       &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// A redirect is a failure: following it would reach a URL that
		// was never checked nor registered.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Worker{store: store, opts: opts, client: client}
}

// Run sends deliveries until stop is closed: at once when events were
// queued, otherwise when the earliest retry is due (and at least every
// minute). A request in flight when stop closes is abandoned and sent
// again after the restart, with the same webhook-id.
func (w *Worker) Run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	for {
		wait := w.round(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.store.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// head is an endpoint's oldest waiting delivery.
type head struct {
	ep  stored
	key []byte
	d   delivery
}

// round sends every endpoint's due deliveries, each endpoint's in order,
// and returns how long to wait for the next due one.
func (w *Worker) round(ctx context.Context) time.Duration {
	wait := time.Minute
	heads, err := w.store.heads()
	if err != nil {
		w.opts.Logger.Error("reading webhook deliveries", "err", err)
		return wait
	}
	now := time.Now()
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for _, h := range heads {
		if due := h.d.Next.Sub(now); due > 0 {
			wait = min(wait, due)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.drain(ctx, h.ep.ID)
		}()
	}
	wg.Wait()
	// An endpoint that failed has its retry in the store now; read again.
	if heads, err := w.store.heads(); err == nil {
		now := time.Now()
		for _, h := range heads {
			wait = min(wait, max(h.d.Next.Sub(now), 0))
		}
	}
	return wait
}

// drain sends an endpoint's deliveries, oldest first, until none is left,
// one fails, or ctx ends.
func (w *Worker) drain(ctx context.Context, id string) {
	for ctx.Err() == nil {
		h, ok, err := w.store.head(id)
		if err != nil {
			w.opts.Logger.Error("reading webhook delivery", "endpoint", id, "err", err)
			return
		}
		if !ok || !h.ep.Disabled.IsZero() || time.Now().Before(h.d.Next) {
			return
		}
		if w.store.db.Shared() {
			claimed, err := w.claim(&h)
			if err != nil {
				w.opts.Logger.Error("claiming webhook delivery", "endpoint", id, "err", err)
				return
			}
			if !claimed {
				return // another node's worker is sending it
			}
		}
		sendErr := w.send(ctx, h)
		if ctx.Err() != nil {
			// Stopping: not an attempt, it goes again after the restart
			// (or at once on another node).
			w.release(h)
			return
		}
		if err := w.record(h, sendErr); err != nil {
			w.opts.Logger.Error("recording webhook delivery", "endpoint", id, "err", err)
			return
		}
		if sendErr != nil {
			return
		}
	}
}

// lease is how long a claimed delivery is kept from the other nodes'
// workers: longer than one send can take (Options.Timeout bounds the
// request), so that only a node that stopped in the middle of a send
// leaves its claim to run out.
func (w *Worker) lease() time.Duration { return w.opts.Timeout + time.Minute }

// claim makes h's delivery this worker's to send, when several nodes'
// workers share the outbox (store.DB.Shared): in one transaction it checks
// that the delivery is still its endpoint's due head and moves its next
// attempt out by the lease, so that no other worker finds it due while it
// is sent. Its outcome (record) replaces the lease. h is refreshed with
// the delivery as read in that transaction.
func (w *Worker) claim(h *head) (bool, error) {
	var claimed bool
	var fresh head
	err := w.store.db.Update(func(tx store.Tx) error {
		claimed = false
		ep, err := getTx(tx, h.ep.ID)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		cur, ok, err := headTx(tx, ep)
		now := time.Now()
		if err != nil || !ok || !ep.Disabled.IsZero() || !bytes.Equal(cur.key, h.key) || now.Before(cur.d.Next) {
			return err
		}
		leased := cur.d
		leased.Next = now.Add(w.lease())
		if err := putDelivery(tx, cur.key, leased); err != nil {
			return err
		}
		claimed, fresh = true, cur
		return nil
	})
	if err != nil || !claimed {
		return false, err
	}
	*h = fresh
	return true, nil
}

// release gives back a claimed delivery that was not attempted (the
// worker is stopping), due at once for any node. Only when shared: there
// is no claim otherwise.
func (w *Worker) release(h head) {
	if !w.store.db.Shared() {
		return
	}
	err := w.store.db.Update(func(tx store.Tx) error {
		v := tx.Bucket(outboxBucket).Get(h.key)
		if v == nil {
			return nil // sent or deleted meanwhile
		}
		var d delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		if d.Next.Before(time.Now()) {
			return nil // the lease ran out: perhaps another worker's now
		}
		d.Next = h.d.Next
		return putDelivery(tx, h.key, d)
	})
	if err != nil {
		w.opts.Logger.Warn("releasing webhook delivery", "endpoint", h.ep.ID, "webhook_id", h.d.ID, "err", err)
	}
}

// send POSTs a delivery, signed now, and says whether it was taken (2xx).
func (w *Worker) send(ctx context.Context, h head) error {
	u, err := url.Parse(h.ep.URL)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && !w.opts.Policy.AllowHTTP {
		return fmt.Errorf("%s is not https, and [webhooks] allow_http is off", u.Scheme)
	}
	secret, err := w.store.openSecret(h.ep.ID)
	if err != nil {
		return err
	}
	ts := time.Now().Unix()
	sig, err := Sign(secret, h.d.ID, ts, h.d.Body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.ep.URL, bytes.NewReader(h.d.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "outbound-webhooks/1")
	req.Header.Set("webhook-id", h.d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, responseLimit))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	reason := resp.Status
	if t := strings.Join(strings.Fields(string(text)), " "); t != "" {
		reason += ": " + t
	}
	return fmt.Errorf("%s", reason)
}

// record stores an attempt's outcome: a delivery taken leaves the outbox;
// a failed one waits for its retry, or, when that would come past MaxAge,
// the endpoint is disabled and its user told, in the same transaction.
func (w *Worker) record(h head, sendErr error) error {
	now := time.Now()
	var disabled []events.Event
	err := w.store.db.Update(func(tx store.Tx) error {
		disabled = nil
		out := tx.Bucket(outboxBucket)
		if out.Get(h.key) == nil {
			return nil // the endpoint was deleted meanwhile
		}
		if sendErr == nil {
			return out.Delete(h.key)
		}
		d := h.d
		d.Attempts++
		if d.First.IsZero() {
			d.First = now
		}
		d.Next = now.Add(w.opts.Backoff(d.Attempts))
		d.LastError = sendErr.Error()
		if d.Next.Sub(d.First) <= w.opts.MaxAge {
			return putDelivery(tx, h.key, d)
		}
		ep, err := getTx(tx, h.ep.ID)
		if err != nil {
			return err
		}
		ep.Disabled, ep.DisabledReason = now.UTC(), d.LastError
		if err := putTx(tx, ep); err != nil {
			return err
		}
		// The head keeps its place: re-enabling sends it first.
		d.Next = time.Time{}
		if err := putDelivery(tx, h.key, d); err != nil {
			return err
		}
		disabled = []events.Event{{At: now, Kind: events.WebhookDisabled, User: ep.User,
			Detail: fmt.Sprintf("webhook endpoint %s (%s) disabled after failing for %s since %s: %s; re-enable it with outbound webhook enable %s %s",
				ep.ID, ep.URL, now.Sub(d.First).Round(time.Second), d.First.UTC().Format(time.RFC3339), d.LastError, ep.User, ep.ID)}}
		return w.opts.Events.Put(tx, disabled...)
	})
	if err != nil {
		return err
	}
	switch {
	case sendErr == nil:
		w.opts.Logger.Debug("webhook delivered", "endpoint", h.ep.ID, "webhook_id", h.d.ID)
	case disabled != nil:
		w.opts.Logger.Warn("webhook endpoint disabled", "endpoint", h.ep.ID, "user", h.ep.User, "err", sendErr)
		w.opts.Events.Counted(disabled)
	default:
		w.opts.Logger.Info("webhook delivery failed; will retry", "endpoint", h.ep.ID, "webhook_id", h.d.ID, "err", sendErr)
	}
	return nil
}

// heads returns each enabled endpoint's oldest delivery.
func (b *Bolt) heads() ([]head, error) {
	var out []head
	err := b.db.View(func(tx store.Tx) error {
		eps, err := enabledEndpoints(tx)
		if err != nil {
			return err
		}
		for _, ep := range eps {
			h, ok, err := headTx(tx, ep)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, h)
			}
		}
		return nil
	})
	return out, err
}

// head returns the endpoint's oldest delivery, if any.
func (b *Bolt) head(id string) (h head, ok bool, err error) {
	err = b.db.View(func(tx store.Tx) error {
		ep, err := getTx(tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		h, ok, err = headTx(tx, ep)
		return err
	})
	return h, ok, err
}

func headTx(tx store.Tx, ep stored) (head, bool, error) {
	k, v := tx.Bucket(outboxBucket).Cursor().Seek(outboxPrefix(ep.ID))
	if k == nil || !bytes.HasPrefix(k, outboxPrefix(ep.ID)) {
		return head{}, false, nil
	}
	var d delivery
	if err := json.Unmarshal(v, &d); err != nil {
		return head{}, false, fmt.Errorf("webhook delivery %x: %w", k, err)
	}
	return head{ep: ep, key: append([]byte(nil), k...), d: d}, true, nil
}
