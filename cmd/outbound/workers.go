package main

import (
	"log/slog"

	"outbound/config"
	"outbound/delivery"
	"outbound/internal/gcpace"
	"outbound/queue"
	"outbound/webhooks"
)

// startWorkers starts what runs in the background until stop closes
// s.done: the delivery workers, the retention sweep, the webhook worker
// the shipper of a cluster node's outbox, and the collector's pacing (gcpace: memory stays near what is alive
// when messages are large). stop waits for delivery and the webhook worker (delivered,
// webhooksDone) so that their last outcomes are stored before the
// database closes.
func (s *server) startWorkers(d *delivery.Deliverer, st *stores, r config.Retention, log *slog.Logger) {
	s.deliveryStarted = true
	go func() {
		d.Run(s.done)
		close(s.delivered)
	}()
	go s.sweep(r, log.With("component", "retention"))
	go gcpace.Run(s.done, gcpace.Options{})
	hookWorker := webhooks.NewWorker(st.webhooks, webhooks.Options{Policy: st.webhookPolicy, Events: st.events, Logger: log.With("component", "webhooks")})
	s.webhooksDone = make(chan struct{})
	go func() {
		hookWorker.Run(s.done)
		close(s.webhooksDone)
	}()
	if st.cluster != nil {
		// What the relay and delivery write to the outbox, to the shared
		// store (package ship).
		s.shipped = make(chan struct{})
		go func() {
			st.cluster.shipper.Run(s.done)
			close(s.shipped)
		}()
	}
}

// sweep applies the retention policy until the server stops: hourly
// sweeps, a sweep soon after each queue delete, and retried wipes.
func (s *server) sweep(r config.Retention, log *slog.Logger) {
	s.queue.RunRetention(s.done, queue.Retention{Content: r.Content.D(), Stub: r.Stub.D()}, log)
}
