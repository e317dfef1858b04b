package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outbound/config"
	"outbound/metrics"
	"outbound/quota"
	"outbound/ship"
	"outbound/store"
)

// cachedBuckets are the shared buckets every node mirrors in memory, kept
// current by the database's notifications: what logins, routing, signing
// and RCPT checks read on every message, and what must keep answering for
// [store] cache_max_stale when the database is down. The event log, the
// webhook outbox and the send API's idempotency answers are read from the
// database when needed.
var cachedBuckets = []string{
	"users", "operators", "api-keys",
	"smarthosts", "smarthost-keys", "dkim-keys",
	"suppressions", "send-api-templates", "webhook-endpoints",
}

// cluster is what a node of several sharing a PostgreSQL store has besides
// the stores: the store itself, the shared quota and the shipper of the
// node's outbox (package ship).
type cluster struct {
	node    string
	pg      *store.Postgres
	quota   *quota.Shared
	shipper *ship.Shipper
}

// openCluster opens the PostgreSQL store of [store] (migrating its schema
// under a lock) and the shared quota on it.
func openCluster(cfg config.Config, log *slog.Logger) (*cluster, error) {
	dsn, err := cfg.StoreDSN()
	if err != nil {
		return nil, err
	}
	c := &cluster{node: cfg.NodeName()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.pg, err = store.OpenPostgres(ctx, store.PostgresOptions{DSN: dsn, Node: c.node, Cached: cachedBuckets,
		MaxStale: cfg.Store.CacheMaxStale.D(), Logger: log.With("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("%w (is PostgreSQL up, and [store] dsn right?)", err)
	}
	c.quota, err = quota.OpenShared(c.pg.Pool(), quota.SharedOptions{LiveNodes: c.pg.LiveNodes,
		Logger: log.With("component", "quota")})
	if err != nil {
		c.pg.Close()
		return nil, err
	}
	registerClusterMetrics(c)
	log.Info("shared state in PostgreSQL", "component", "store", "node", c.node, "live_nodes", c.pg.LiveNodes())
	return c, nil
}

// close closes the shared quota and then the store under it.
func (c *cluster) close() {
	c.quota.Close()
	c.pg.Close()
}

// currentCluster is the cluster the metrics read: a process runs one
// relay (tests start several in turn).
var currentCluster atomic.Pointer[cluster]

// registerClusterMetrics exposes outbound_store_up and the shared quota's
// own metrics (outbound_quota_local_share, outbound_quota_local_holds_total)
// once per process.
func registerClusterMetrics(c *cluster) {
	if currentCluster.Swap(c) != nil {
		return
	}
	metrics.Register()
	metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outbound_store_up",
		Help: "1 while this node reaches the shared PostgreSQL store, 0 while it serves from its caches and outbox.",
	}, func() float64 {
		if c := currentCluster.Load(); c != nil && c.pg.Healthy() {
			return 1
		}
		return 0
	}))
	metrics.Registry.MustRegister(c.quota.Collectors()...)
}

// warnUnmigrated says so when the node's own file holds users the shared
// store lacks: a relay that ran on this data_dir alone, and whose state
// `outbound store migrate` did not move (a cluster node reads only the
// shared store).
func warnUnmigrated(local, shared store.DB, log *slog.Logger) {
	var names [][]byte
	local.View(func(tx store.Tx) error {
		if b := tx.Bucket([]byte("users")); b != nil {
			b.ForEach(func(k, _ []byte) error {
				names = append(names, append([]byte(nil), k...))
				return nil
			})
		}
		return nil
	})
	missing := 0
	shared.View(func(tx store.Tx) error {
		b := tx.Bucket([]byte("users"))
		for _, k := range names {
			if b == nil || b.Get(k) == nil {
				missing++
			}
		}
		return nil
	})
	if missing > 0 {
		log.Warn("this data_dir's bbolt file holds users the shared store does not have, and a cluster node reads only the shared store: run `outbound store migrate` with the node stopped if they should move there (docs/cluster.md)",
			"component", "store", "users_only_in_file", missing)
	}
}
