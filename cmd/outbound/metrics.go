package main

import (
	"time"

	"outbound/metrics"
	"outbound/queue"
)

// registerMetrics registers the relay's metrics, with the gauges read at
// each scrape: the certificate's expiry and the queue's length and age.
func registerMetrics(cert *listenerCert, q *queue.Queue) {
	metrics.Register()
	metrics.TLSExpiryFunc(cert.expiry)
	metrics.QueueFuncs(
		func() float64 { return float64(q.Stats().Pending) },
		func() float64 {
			if oldest := q.Stats().Oldest; !oldest.IsZero() {
				return time.Since(oldest).Seconds()
			}
			return 0
		})
}
