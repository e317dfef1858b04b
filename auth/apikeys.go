package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"outbound/store"
)

// On disk, bucket "api-keys" maps the hex SHA-256 of an API key to the JSON
// form of APIKey. The key itself is never stored: it is shown once, when
// created. A plain SHA-256 (not bcrypt) is enough because a key is 160
// random bits, beyond guessing, and it is checked at every HTTP request.
var apiKeysBucket = []byte("api-keys")

// APIKeyPrefix starts every API key, so that a leaked one is recognisable
// (secret scanners) and cannot be mistaken for a password.
const APIKeyPrefix = "obk_"

// apiKeyShown is how much of a key is kept in clear for listing and
// revoking: the prefix and 8 characters of its random part.
const apiKeyShown = len(APIKeyPrefix) + 8

// ErrNoSuchAPIKey is returned for a prefix that names none of a user's keys.
var ErrNoSuchAPIKey = errors.New("no such API key")

// APIKey is one key of the HTTP send API, which sends as its user.
type APIKey struct {
	// User is the relay user the key sends as; read by the send API.
	User string `json:"user"`
	// Name is the operator's label for the key ("billing app").
	Name string `json:"name,omitempty"`
	// Prefix is the key's first characters, shown in lists and used to
	// revoke it.
	Prefix string `json:"prefix"`
	// Created is when the key was made.
	Created time.Time `json:"created"`
	// LastUsed is when the key last authenticated a request, to the
	// minute (see Verify); zero if never.
	LastUsed time.Time `json:"last_used,omitempty"`
}

// APIKeys keeps the API keys in the shared store (package store).
type APIKeys struct {
	db  store.DB
	now func() time.Time
}

// NewAPIKeys opens (creating if needed) the api-keys bucket in db.
func NewAPIKeys(db store.DB) (*APIKeys, error) {
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(apiKeysBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating api-keys bucket: %w", err)
	}
	return &APIKeys{db: db, now: time.Now}, nil
}

func hashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return []byte(hex.EncodeToString(h[:]))
}

// Create makes a key for user and returns it with its record. The key is
// in no other place afterwards: the caller shows it once.
func (k *APIKeys) Create(user, name string) (string, *APIKey, error) {
	var random [20]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", nil, err
	}
	key := APIKeyPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(random[:]))
	rec := &APIKey{User: user, Name: name, Prefix: key[:apiKeyShown], Created: k.now().UTC()}
	err := k.db.Update(func(tx store.Tx) error {
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Bucket(apiKeysBucket).Put(hashAPIKey(key), v)
	})
	if err != nil {
		return "", nil, err
	}
	return key, rec, nil
}

// List returns user's keys, oldest first.
func (k *APIKeys) List(user string) ([]*APIKey, error) {
	var out []*APIKey
	err := k.db.View(func(tx store.Tx) error {
		return tx.Bucket(apiKeysBucket).ForEach(func(_, v []byte) error {
			var rec APIKey
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec.User == user {
				out = append(out, &rec)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// Revoke deletes user's keys whose prefix starts with prefix (at least
// the "obk_" and one more character). It returns how many it deleted, or
// ErrNoSuchAPIKey.
func (k *APIKeys) Revoke(user, prefix string) (int, error) {
	if len(prefix) <= len(APIKeyPrefix) {
		return 0, fmt.Errorf("%w: give the prefix shown by apikey list (%s...)", ErrNoSuchAPIKey, APIKeyPrefix)
	}
	n := 0
	err := k.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(apiKeysBucket)
		var doomed [][]byte
		err := b.ForEach(func(h, v []byte) error {
			var rec APIKey
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec.User == user && strings.HasPrefix(rec.Prefix, prefix) {
				doomed = append(doomed, append([]byte(nil), h...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, h := range doomed {
			if err := b.Delete(h); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: user %s has no key starting with %s", ErrNoSuchAPIKey, user, prefix)
	}
	return n, err
}

// Verify returns the record of key, or ErrBadCredentials. It records the
// use, at most once a minute per key, so that a busy app does not turn
// every request into a database write.
func (k *APIKeys) Verify(key string) (*APIKey, error) {
	if !strings.HasPrefix(key, APIKeyPrefix) {
		return nil, ErrBadCredentials
	}
	h := hashAPIKey(key)
	var rec *APIKey
	err := k.db.View(func(tx store.Tx) error {
		v := tx.Bucket(apiKeysBucket).Get(h)
		if v == nil {
			return ErrBadCredentials
		}
		rec = new(APIKey)
		return json.Unmarshal(v, rec)
	})
	if err != nil {
		return nil, err
	}
	now := k.now().UTC()
	if now.Sub(rec.LastUsed) >= time.Minute {
		// Read again in the write: another node sharing the store may
		// have changed the record since.
		err = k.db.Update(func(tx store.Tx) error {
			b := tx.Bucket(apiKeysBucket)
			v := b.Get(h)
			if v == nil {
				return ErrBadCredentials // revoked meanwhile
			}
			rec = new(APIKey)
			if err := json.Unmarshal(v, rec); err != nil {
				return err
			}
			rec.LastUsed = now.Truncate(time.Minute)
			v, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			return b.Put(h, v)
		})
		if err != nil {
			return nil, err
		}
	}
	return rec, nil
}
