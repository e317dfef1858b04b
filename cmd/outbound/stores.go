package main

import (
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"outbound/auth"
	"outbound/capture"
	"outbound/config"
	"outbound/dkim"
	"outbound/events"
	"outbound/metrics"
	"outbound/queue"
	"outbound/quota"
	"outbound/sendapi"
	"outbound/smarthost"
	"outbound/store"
	"outbound/suppression"
	"outbound/webhooks"
)

// stores are the relay's storage owners, each with its buckets: the queue
// and the quota in the bbolt file, the others in the shared store (package
// store, on the same file unless several nodes share PostgreSQL), each
// with its buckets (docs/flow.md, "What is on disk").
type stores struct {
	users     *auth.Store
	operators *auth.Operators
	apiKeys   *auth.APIKeys
	queue     *queue.Queue
	quota     *quota.Store
	events    *events.Bolt
	captured  *capture.Bolt
	webhooks  *webhooks.Bolt
	// webhookPolicy is what webhook URLs may be, for the store and the worker.
	webhookPolicy webhooks.Policy
	suppressed    *suppression.Bolt
	hosts         *smarthost.Store
	dkim          *dkim.Store
	templates     *sendapi.Templates
}

// openStores opens every store on db and ties together the ones whose
// writes share a transaction or a key. The queue and the quota use the
// bbolt file itself; the others go through package store, on a veneer
// over the same file.
func openStores(db *bolt.DB, cfg config.Config) (_ *stores, err error) {
	return openStoresOn(db, store.Bolt(db), cfg)
}

// openStoresOn is openStores with the shared state in sdb, which may be
// another database than the queue's file (store.Postgres).
//
// Not yet for PostgreSQL: the writes made in the queue's own transaction
// (events.Bolt.Write and Put from delivery, the events and capture
// journals at retention, delivery's suppressions, the send API's
// Idempotency-Key answers) go to the queue's bbolt file whatever sdb is,
// where their buckets exist only when sdb is that file.
func openStoresOn(db *bolt.DB, sdb store.DB, cfg config.Config) (_ *stores, err error) {
	st := &stores{}
	if st.users, err = auth.NewStore(sdb); err != nil {
		return nil, err
	}
	if st.operators, err = auth.NewOperators(sdb, st.users); err != nil {
		return nil, err
	}
	if st.apiKeys, err = auth.NewAPIKeys(sdb); err != nil {
		return nil, err
	}
	if st.queue, err = queue.Open(db, nil); err != nil {
		return nil, err
	}
	if st.quota, err = quota.Open(db, nil); err != nil {
		return nil, err
	}
	// Delivery tracking: the events are deleted with their message's stub.
	if st.events, err = events.OpenBolt(sdb, func(k events.Kind) { metrics.Events.WithLabelValues(string(k)).Inc() }); err != nil {
		return nil, err
	}
	// Captured messages (the capture route): their content goes with
	// their queued message's, at retention.content, in the same
	// transaction; the capture with the message's stub.
	if st.captured, err = capture.OpenBolt(sdb); err != nil {
		return nil, err
	}
	st.queue.SetJournal(journals{st.events, st.captured})
	scope, err := suppression.ParseScope(cfg.Suppression.Scope)
	if err != nil {
		return nil, err
	}
	if st.suppressed, err = suppression.OpenBolt(sdb, scope, cfg.Suppression.Expire.D(), nil); err != nil {
		return nil, err
	}
	if st.hosts, err = smarthost.Open(sdb, filepath.Join(cfg.DataDir, "secrets.key")); err != nil {
		return nil, err
	}
	// DKIM keys are sealed under the same master key, and its rotation
	// re-seals them with the smarthost passwords.
	if st.dkim, err = dkim.Open(sdb, st.hosts, nil); err != nil {
		return nil, err
	}
	st.hosts.AlsoReseal(st.dkim.Reseal)
	// Users' webhooks: events are queued for their endpoints in the
	// transaction that records them, so set before anything records; their
	// signing secrets are sealed like the DKIM keys.
	st.webhookPolicy = webhooks.Policy{AllowHTTP: cfg.Webhooks.AllowHTTP, AllowPrivate: cfg.Webhooks.AllowPrivate}
	if st.webhooks, err = webhooks.OpenBolt(sdb, st.webhookPolicy, st.hosts); err != nil {
		return nil, err
	}
	st.hosts.AlsoReseal(st.webhooks.Reseal)
	st.events.SetOutbox(st.webhooks)
	// The send API's template store, for the admin API and the web editor.
	if st.templates, err = sendapi.OpenTemplates(sdb, nil); err != nil {
		return nil, err
	}
	return st, nil
}
