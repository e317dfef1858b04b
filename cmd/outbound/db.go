package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openDB opens the shared bbolt file. A short lock timeout turns "another
// outbound serve is running" into a clear error instead of a hang.
func openDB(dataDir string) (*bolt.DB, error) {
	path := filepath.Join(dataDir, "outbound.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%s is locked: is another `outbound serve` running with this data_dir?", path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// Submissions and delivery outcomes are group-committed without any
	// timer (package groupcommit). What still uses bbolt's DB.Batch (a
	// quota Release after a failed write) would wait bbolt's default
	// 10 ms for company; 1 ms is plenty.
	db.MaxBatchDelay = time.Millisecond
	return db, nil
}
