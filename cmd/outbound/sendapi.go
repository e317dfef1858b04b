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
// hours are purged hourly until the server stops.
func (s *server) listenSendAPI(cfg config.Config, keys *auth.APIKeys, backend *relay.Backend, log *slog.Logger) error {
	h, err := sendapi.New(sendapi.Options{Keys: keys, Relay: backend, DB: store.Bolt(s.db), TemplatesDB: s.st.shared, Hostname: cfg.Hostname,
		MaxMessageBytes: cfg.Submission.MaxMessageBytes, Logger: log})
	if err != nil {
		return err
	}
	addr := cfg.SendAPI.Listen
	if err := s.listenHTTP(httpListener{key: "send_api", what: "send API", addr: addr, handler: h,
		useTLS: adminServesTLS(addr), paths: "v1/messages", writeTimeout: time.Minute}, log); err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				if err := h.PurgeIdempotency(); err != nil {
					log.Warn("purging idempotency keys failed", "err", err)
				}
			}
		}
	}()
	return nil
}
