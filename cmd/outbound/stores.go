package main

import (
	"log/slog"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"outbound/auth"
	"outbound/capture"
	"outbound/config"
	"outbound/delivery"
	"outbound/dkim"
	"outbound/events"
	"outbound/metrics"
	"outbound/queue"
	"outbound/quota"
	"outbound/sendapi"
	"outbound/ship"
	"outbound/smarthost"
	"outbound/store"
	"outbound/suppression"
	"outbound/webhooks"
)

// stores are the relay's storage owners. The queue and the captured
// messages are always in the node's own bbolt file; the others are in the
// shared state (package store): the same file for one relay, or a
// PostgreSQL database several nodes share (docs/cluster.md).
type stores struct {
	users     *auth.Store
	operators *auth.Operators
	apiKeys   *auth.APIKeys
	queue     *queue.Queue
	quota     quota.Limiter
	// events is the event log readers see (the admin API, provider
	// webhooks, the webhook worker): the shared one.
	events *events.Bolt
	// recorder is where the relay and delivery write a message's events,
	// in the queue's transaction: events itself on one file, else the
	// outbox that ships them to events.
	recorder recorder
	// learnt takes the suppressions deliveries learn, in the queue's
	// transaction: suppressed itself on one file, else the outbox.
	learnt   delivery.Suppressor
	captured *capture.Bolt
	webhooks *webhooks.Bolt
	// webhookPolicy is what webhook URLs may be, for the store and the worker.
	webhookPolicy webhooks.Policy
	suppressed    *suppression.Bolt
	hosts         *smarthost.Store
	dkim          *dkim.Store
	templates     *sendapi.Templates
	// local is the node's own file as a store.DB; shared is the shared
	// state (local itself on one file).
	local, shared store.DB
	// cluster is set when the shared state is in PostgreSQL.
	cluster *cluster
}

// recorder writes a message's events in the queue's transaction: the
// relay's Events and delivery's EventWriter.
type recorder interface {
	Put(tx store.Tx, evs ...events.Event) error
	Write(evs ...events.Event) queue.TxHook
	Counted(evs []events.Event)
}

var (
	_ recorder = (*events.Bolt)(nil)
	_ recorder = (*ship.Shipper)(nil)
)

// openStores opens every store and ties together the ones whose writes
// share a transaction or a key: on db alone, or with the shared state in
// PostgreSQL when [store] kind = "postgres".
func openStores(db *bolt.DB, cfg config.Config, log *slog.Logger) (_ *stores, err error) {
	st := &stores{local: store.Bolt(db)}
	st.shared = st.local
	if cfg.Store.Kind == "postgres" {
		if st.cluster, err = openCluster(cfg, log); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				st.cluster.close()
			}
		}()
		st.shared = st.cluster.pg
		warnUnmigrated(st.local, st.shared, log)
	}
	sdb := st.shared
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
	if st.cluster != nil {
		st.quota = st.cluster.quota
	} else if st.quota, err = quota.Open(db, nil); err != nil {
		return nil, err
	}
	countEvent := func(k events.Kind) { metrics.Events.WithLabelValues(string(k)).Inc() }
	if st.events, err = events.OpenBolt(sdb, countEvent); err != nil {
		return nil, err
	}
	// Captured messages (the capture route): their content goes with
	// their queued message's, at retention.content, in the same
	// transaction; the capture with the message's stub. Always the node's
	// own: the bytes are big, and capture is for trying things out.
	if st.captured, err = capture.OpenBolt(st.local); err != nil {
		return nil, err
	}
	scope, err := suppression.ParseScope(cfg.Suppression.Scope)
	if err != nil {
		return nil, err
	}
	if st.suppressed, err = suppression.OpenBolt(sdb, scope, cfg.Suppression.Expire.D(), nil); err != nil {
		return nil, err
	}
	// Delivery tracking: events are written with the queue change they
	// report and deleted with their message's stub (queue.Journal).
	if st.cluster == nil {
		st.recorder, st.learnt = st.events, st.suppressed
		st.queue.SetJournal(journals{st.events, st.captured})
	} else {
		sh, err := ship.New(st.local, sdb, st.events, st.suppressed, ship.Options{Node: st.cluster.node,
			Counted: countEvent, Logger: log.With("component", "ship")})
		if err != nil {
			return nil, err
		}
		st.cluster.shipper = sh
		st.recorder, st.learnt = sh, sh.Suppressions()
		st.queue.SetJournal(journals{sh, st.captured})
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
	// transaction that records them in the (shared) log, so set before
	// anything records; their signing secrets are sealed like the DKIM
	// keys.
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

// close closes what openStores opened besides db: the PostgreSQL store.
func (st *stores) close() {
	if st != nil && st.cluster != nil {
		st.cluster.close()
	}
}

// nodeName is this node's name in a cluster, "" for one relay.
func (st *stores) nodeName() string {
	if st.cluster == nil {
		return ""
	}
	return st.cluster.node
}
