package main

import (
	"errors"
	"log/slog"
	"net/http"

	"outbound/config"
	"outbound/events"
	"outbound/metrics"
	"outbound/providerhooks"
	"outbound/smarthost"
	"outbound/suppression"
)

// providerHooksHandler is the providers' webhook handler: secrets from the
// smarthost named in the path, events matched and recorded in evlog,
// suppressions in sup, results counted in the metrics.
func providerHooksHandler(c config.ProviderWebhooks, hosts *smarthost.Store, evlog *events.Bolt, sup *suppression.Bolt, log *slog.Logger) http.Handler {
	return providerhooks.NewHandler(providerhooks.Options{
		Secrets: func(name string) (providerhooks.Secrets, error) {
			m, err := hosts.WebhookSecrets(name)
			if errors.Is(err, smarthost.ErrNotFound) {
				return providerhooks.Secrets{}, nil
			}
			if err != nil {
				return providerhooks.Secrets{}, err
			}
			return providerhooks.SecretsFromMap(m), nil
		},
		Verifiers:    providerhooks.Verifiers(providerhooks.NewGuard(nil, 0)),
		Messages:     evlog,
		Events:       evlog,
		Suppressions: sup,
		Count:        func(p, r string) { metrics.ProviderWebhooks.WithLabelValues(p, r).Inc() },
		MaxBody:      c.MaxBodyBytes,
		Log:          log,
	})
}
