package main

import (
	"log/slog"
	"time"

	"outbound/auth"
	"outbound/config"
	"outbound/relay"
	"outbound/sendapi"
	"outbound/store"
)

// listenSendAPI starts the send API's listener ([send_api] listen): plain
// HTTP on loopback, HTTPS with the relay's certificate anywhere else, as
// the admin listener. Its messages go through backend, the SMTP
// listeners' own submission path. Idempotency-Key answers past their 24
// hours are purged hourly until the server stops; on a cluster node the
// keys are claimed in the shared store too (sendapi.Options.SharedDB).
func (s *server) listenSendAPI(cfg config.Config, keys *auth.APIKeys, backend *relay.Backend, log *slog.Logger) error {
	opts := sendapi.Options{Keys: keys, Relay: backend, DB: store.Bolt(s.db), TemplatesDB: s.st.shared, Hostname: cfg.Hostname,
		MaxMessageBytes: cfg.Submission.MaxMessageBytes, Logger: log}
	if s.st.cluster != nil {
		// A retry may reach another node: the keys are claimed in the
		// store the nodes share.
		opts.SharedDB, opts.Node = s.st.shared, s.st.nodeName()
	}
	h, err := sendapi.New(opts)
	if err != nil {
		return err
	}
	addr := cfg.SendAPI.Listen
	if err := s.listenHTTP(httpListener{key: "send_api", what: "send API", addr: addr, handler: h,
		useTLS: adminServesTLS(addr), paths: "v1/messages", writeTimeout: time.Minute}, log); err != nil {
		return err
	}
	go func() {
		purge := time.NewTicker(time.Hour)
		defer purge.Stop()
		// On a cluster node: answers and releases the shared store missed
		// while it could not be reached (a no-op on one relay).
		settle := time.NewTicker(30 * time.Second)
		defer settle.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-purge.C:
				if err := h.PurgeIdempotency(); err != nil {
					log.Warn("purging idempotency keys failed", "err", err)
				}
			case <-settle.C:
				if err := h.SettleIdempotency(); err != nil {
					log.Warn("writing idempotency keys to the shared store failed", "err", err)
				}
			}
		}
	}()
	return nil
}
