// Package metrics defines the relay's Prometheus metrics in one place, so
// that their names and labels are documented together (docs/metrics.md)
// and every package records into the same registry. The admin API serves
// them at /metrics.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry holds every metric of the relay plus Go and process metrics.
var Registry = prometheus.NewRegistry()

// Register adds the relay's metrics and the Go and process collectors to
// Registry; cmd/outbound calls it once at start.
func Register() {
	registerOnce.Do(func() {
		Registry.MustRegister(Submissions, AuthFailures, QuotaRefusals, Deliveries, UpstreamLatency, Events, ProviderWebhooks,
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	})
}

var registerOnce sync.Once

var (
	// Submissions counts messages offered at end of DATA, by result:
	// "queued", "refused" (policy: sender, SPF, line endings, header),
	// "too_large", "quota", "storage_error".
	Submissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outbound_submissions_total",
		Help: "Messages submitted by clients, by result.",
	}, []string{"result"})
	// AuthFailures counts failed AUTH attempts, by reason: "bad_credentials",
	// "locked_out".
	AuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outbound_auth_failures_total",
		Help: "Failed SMTP AUTH attempts, by reason.",
	}, []string{"reason"})
	// QuotaRefusals counts recipients or messages refused over a limit.
	QuotaRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outbound_quota_refusals_total",
		Help: "Recipients or messages refused because a user's limit was reached, by window.",
	}, []string{"window"})
	// Deliveries counts per-recipient outcomes of delivery attempts, by
	// upstream, result ("delivered", "deferred", "failed") and bounce
	// category ("" when delivered).
	Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outbound_deliveries_total",
		Help: "Per-recipient outcomes of delivery attempts, by upstream, result and bounce category.",
	}, []string{"upstream", "result", "category"})
	// ProviderWebhooks counts the providers' webhook requests and events,
	// by provider (mailgun, sendgrid, postmark, ses, generic) and result:
	// "refused" (a request failing its provider's check, or malformed),
	// "recorded", "unmatched" (an event for no message of ours),
	// "duplicate" (an event id seen before), "ignored" (a request with no
	// delivery outcome in it), "error" (storage).
	ProviderWebhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outbound_provider_webhooks_total",
		Help: "Providers' webhook requests and events, by provider and result.",
	}, []string{"provider", "result"})
	// Events counts the delivery tracking events recorded, by kind
	// (package events: received, relayed, failed, provider_bounced, ...):
	// the provider-reported kinds are what became of mail after the 250.
	Events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outbound_events_total",
		Help: "Delivery tracking events recorded, by kind.",
	}, []string{"kind"})
	// UpstreamLatency is the duration of delivery attempts per upstream.
	UpstreamLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "outbound_upstream_attempt_seconds",
		Help:    "Duration of delivery attempts (connect or reuse, MAIL, RCPT, DATA), by upstream.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"upstream"})
)

// QueueFuncs registers the queue gauges, read when scraped. Only the first
// call registers.
func QueueFuncs(pending func() float64, oldestAge func() float64) {
	queueOnce.Do(func() { registerQueue(pending, oldestAge) })
}

var queueOnce sync.Once

func registerQueue(pending func() float64, oldestAge func() float64) {
	Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outbound_queue_messages",
			Help: "Unfinished messages in the queue.",
		}, pending),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outbound_queue_oldest_seconds",
			Help: "Age of the oldest unfinished message in the queue, 0 when empty.",
		}, oldestAge),
	)
}

// TLSExpiryFunc registers outbound_tls_certificate_expiry_timestamp_seconds,
// the listeners' certificate's expiry as a Unix time (0 while there is
// none, an ACME certificate not obtained yet), read when scraped; alert
// on it minus time() falling under 14 days. Only the first call
// registers.
func TLSExpiryFunc(notAfter func() float64) {
	tlsOnce.Do(func() {
		Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "outbound_tls_certificate_expiry_timestamp_seconds",
			Help: "Expiry of the listeners' TLS certificate, as a Unix time; 0 while there is none.",
		}, notAfter))
	})
}

var tlsOnce sync.Once
