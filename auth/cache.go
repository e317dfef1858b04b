package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"
)

// verifyCacheLifetime bounds how long a successful login is remembered. A
// short lifetime limits the window in which a password leaked from memory
// would be useful, while still sparing clients that send one message per
// connection (most app libraries) a bcrypt hash per message.
const verifyCacheLifetime = 5 * time.Minute

// verifyCache remembers recent successful verifications as a keyed hash of
// the password, never the password itself. The key is random per process, so
// the cache is useless to anyone who reads memory dumps from another run.
type verifyCache struct {
	key []byte

	// compare is the slow check, bcrypt; tests count its calls. Call it
	// through slowCompare, which takes a slot.
	compare func(hash, password []byte) error
	// slots caps the bcrypt comparisons running at once: one per CPU.
	// Each takes a whole CPU for ~65 ms, so more at once only makes every
	// one of them slower, and a flood of guesses (each with a different
	// password, or for unknown logins) would otherwise starve the
	// sessions that are sending mail. Callers beyond the cap wait their
	// turn.
	slots chan struct{}
	// flight runs one compare for all callers presenting the same
	// credentials at the same moment.
	flight singleflight.Group

	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	// mac is HMAC-SHA256(key, password).
	mac []byte
	// hash is the stored bcrypt hash the password was checked against, so a
	// password changed by another path (or another process) invalidates it.
	hash    []byte
	expires time.Time
}

func newVerifyCache() *verifyCache {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return &verifyCache{
		key:     key,
		compare: bcrypt.CompareHashAndPassword,
		slots:   make(chan struct{}, runtime.GOMAXPROCS(0)),
		entries: make(map[string]cacheEntry),
	}
}

// slowCompare runs one bcrypt comparison once a slot is free.
func (c *verifyCache) slowCompare(hash, password []byte) error {
	c.slots <- struct{}{}
	defer func() { <-c.slots }()
	return c.compare(hash, password)
}

// check verifies a password the cache does not know against the stored
// hash, and remembers it when it matches. Concurrent checks of the same
// credentials share one bcrypt: an app that opens fifty connections as it
// starts costs one hash, not fifty (each is ~65 ms of CPU). Only the same
// name, stored hash and password share a result, so a wrong password never
// rides on a right one.
func (c *verifyCache) check(name string, hash []byte, password string) bool {
	key := name + "\x00" + string(hash) + "\x00" + string(c.mac(password))
	ok, _, _ := c.flight.Do(key, func() (any, error) {
		if c.slowCompare(hash, []byte(password)) != nil {
			return false, nil
		}
		c.remember(name, hash, password)
		return true, nil
	})
	return ok.(bool)
}

func (c *verifyCache) mac(password string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(password))
	return m.Sum(nil)
}

func (c *verifyCache) matches(name string, hash []byte, password string) bool {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if !ok || time.Now().After(e.expires) || !bytes.Equal(e.hash, hash) {
		return false
	}
	return subtle.ConstantTimeCompare(e.mac, c.mac(password)) == 1
}

func (c *verifyCache) remember(name string, hash []byte, password string) {
	e := cacheEntry{mac: c.mac(password), hash: hash, expires: time.Now().Add(verifyCacheLifetime)}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Keep the map bounded: drop expired entries when it grows.
	if len(c.entries) > 10000 {
		now := time.Now()
		for k, v := range c.entries {
			if now.After(v.expires) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[name] = e
}

func (c *verifyCache) forget(name string) {
	c.mu.Lock()
	delete(c.entries, name)
	c.mu.Unlock()
}
