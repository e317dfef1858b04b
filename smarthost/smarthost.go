// Package smarthost owns the named upstreams users can be routed through:
// their settings (checked, CA file included) and their passwords encrypted
// at rest. Package route turns them into upstreams; delivery dials them
// and runs the connection test before one is saved.
//
// # On disk
//
// In the shared store (package store), bucket "smarthosts" maps a smarthost's name to
// the JSON form of Smarthost. Records written before smarthosts had a
// kind have none and read as KindSMTP. The password is never stored in the clear:
// SealedPassword is nonce || AES-256-GCM(password), with the smarthost's
// name as additional data, so that a sealed password copied onto another
// smarthost's record does not open. Bucket "smarthost-keys" holds one
// value, "check": a known text sealed under the master key, which tells at
// start whether the key is the one the passwords were sealed with.
//
// The 32-byte master key comes from the environment variable
// OUTBOUND_MASTER_KEY (hex or base64) or else from the key file
// (data_dir/secrets.key), created with mode 0600 on first start.
//
// # Key rotation and crashes
//
// RotateKey writes the new key to secrets.key.new (through a temporary
// file, fsynced, then renamed), then
// re-encrypts every password and the check value in one bbolt transaction,
// then renames secrets.key.new over secrets.key. A crash before the commit
// leaves the old key file and the old ciphertexts; a crash after the
// commit but before the rename leaves the new ciphertexts, the old key file
// and the new key in secrets.key.new. Open handles both: it uses whichever
// of the two keys opens the check value and finishes the rename. At no
// point is the only copy of a key that opens the database lost.
//
// # Several nodes
//
// When relay nodes share the store (PostgreSQL), they must all have the
// same master key: the first to open the store writes the check value, and
// Open refuses a node whose key does not open it, saying to copy
// secrets.key from a node already in use (and removes a key it just made
// for that node). A rotation on one node leaves the others with the old
// key until their secrets.key is replaced and they restart; until then
// their unsealing errors say so. Version also moves when another node
// changes a smarthost (store.DB.Watch).
package smarthost

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"outbound/internal/netutil"
	"outbound/provider"
	"outbound/spf"
	"outbound/store"
)

var (
	bucket    = []byte("smarthosts")
	keyBucket = []byte("smarthost-keys")
	checkKey  = []byte("check")
)

// checkText is sealed under the master key to recognise the right key.
const checkText = "outbound master key check"

// KeyEnv is the environment variable that, when set, holds the master key
// (64 hex digits or base64 of 32 bytes) instead of the key file.
const KeyEnv = "OUTBOUND_MASTER_KEY"

// ErrNotFound is returned for a smarthost name that does not exist.
var ErrNotFound = errors.New("no such smarthost")

// ErrExists is returned when adding a name that is already taken.
var ErrExists = errors.New("smarthost already exists")

// ErrInUse is returned when deleting a smarthost that users still use.
var ErrInUse = errors.New("smarthost is in use")

// The kinds of smarthost (Smarthost.Kind).
const (
	// KindSMTP is an SMTP server that delivery connects to: the kind of
	// every smarthost before kinds existed.
	KindSMTP = "smtp"
	// KindCapture keeps the messages routed through it in the capture
	// store instead of sending them (package capture), as the default
	// route's mode = "capture" does: a staging relay can capture one
	// user's mail while others' is sent. It has no host, port, TLS mode,
	// credentials, SPF identity or fallback: nothing leaves.
	KindCapture = "capture"
)

// Smarthost is one named upstream. Every field is persisted; package
// route reads them for delivery and for the relay's SPF check.
type Smarthost struct {
	// Name is the route name users refer to (auth.User.Route).
	Name string `json:"name"`
	// Kind is KindSMTP or KindCapture. Records stored without one read as
	// KindSMTP; Add and Update store it, KindSMTP when left empty. The
	// connection, SPF and fallback settings below are KindSMTP's only: a
	// capture smarthost has none, nor an owner (Validate).
	Kind string `json:"kind,omitempty"`
	// Host and Port are where to connect.
	Host string `json:"host"`
	Port int    `json:"port"`
	// TLS is "implicit", "starttls" or "none" (loopback hosts only).
	TLS string `json:"tls"`
	// Username is the AUTH login; empty means no AUTH.
	Username string `json:"username,omitempty"`
	// SealedPassword is nonce || AES-256-GCM(password) under the master key,
	// the name as additional data. Only Store.Password opens it.
	SealedPassword []byte `json:"sealed_password,omitempty"`
	// SealedWebhookSecrets is nonce || AES-256-GCM(JSON of the provider's
	// webhook secrets) under the master key, the name and
	// "/webhook-secrets" as additional data. Only Store.WebhookSecrets
	// opens it (webhook_secrets.go).
	SealedWebhookSecrets []byte `json:"sealed_webhook_secrets,omitempty"`
	// CAFile, when set, is a PEM file of CAs trusted besides the system
	// roots for this upstream's certificate.
	CAFile string `json:"ca_file,omitempty"`
	// SPFInclude is the include domain senders publish for this upstream;
	// empty means the preset's. Read by the relay's SPF check.
	SPFInclude string `json:"spf_include,omitempty"`
	// SPFIPs are egress addresses of the upstream, checked besides the include.
	SPFIPs []string `json:"spf_ips,omitempty"`
	// SPFPolicy is what the relay does when a sender's SPF does not
	// authorize this upstream ("off", "warn", "enforce"); empty means the
	// configured default_route.spf_policy. A user's own policy overrides it.
	SPFPolicy string `json:"spf_policy,omitempty"`
	// Fallback names a smarthost that takes an attempt when this one is
	// backed off or fails temporarily before it could have the message
	// (see package delivery). It must exist and cannot be deleted while
	// named.
	Fallback string `json:"fallback,omitempty"`
	// Preset is the provider preset the settings came from, if any.
	Preset string `json:"preset,omitempty"`
	// Owner is the login of the user whose own SMTP server this is (set
	// through the admin API's PUT /api/users/{name}/smarthost); empty for
	// the smarthosts operators name and share. Only its owner is routed
	// through it, it is no other smarthost's fallback, and delivery keeps
	// its connections and backoff apart from everyone else's (package
	// route), since its credentials are the owner's alone.
	Owner string `json:"owner,omitempty"`
	// PublicOnly says the owner itself (a sender, not an operator) chose
	// the host: delivery connects to it only on public addresses (see
	// netutil.PublicOnlyControl), unless the operator allows private hosts.
	PublicOnly bool `json:"public_only,omitempty"`
	// Created is when the smarthost was added.
	Created time.Time `json:"created"`
}

// Captures reports whether h is of kind capture: its mail is kept, never
// sent.
func (h *Smarthost) Captures() bool { return h.Kind == KindCapture }

// Validate checks the settings (not the password) and says what to fix.
// An empty Kind is KindSMTP.
func (h *Smarthost) Validate() error {
	if err := ValidateName(h.Name); err != nil {
		return err
	}
	switch h.Kind {
	case "", KindSMTP:
	case KindCapture:
		return h.validateCapture()
	default:
		return fmt.Errorf("kind %q is not a smarthost kind: %q (an SMTP server, the default) or %q (keep the mail, never send it)", h.Kind, KindSMTP, KindCapture)
	}
	if h.Host == "" || (strings.ContainsAny(h.Host, " /:@") && net.ParseIP(h.Host) == nil) {
		return fmt.Errorf("host %q is not a host name: give the upstream's SMTP host, e.g. smtp.sendgrid.net", h.Host)
	}
	if h.Port < 1 || h.Port > 65535 {
		return fmt.Errorf("port %d is out of range: usually 587 (starttls) or 465 (implicit)", h.Port)
	}
	if err := netutil.ValidateTLSMode(h.TLS, h.Host); err != nil {
		return err
	}
	for _, ip := range h.SPFIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("spf ip %q is not an IP address", ip)
		}
	}
	if h.Fallback == h.Name {
		return fmt.Errorf("smarthost %s cannot be its own fallback", h.Name)
	}
	if h.SPFPolicy != "" {
		if _, err := spf.ParsePolicy(h.SPFPolicy); err != nil {
			return fmt.Errorf("spf policy: %v (empty follows default_route.spf_policy)", err)
		}
	}
	return nil
}

// MakeCapture makes h of kind capture and drops what only an SMTP server
// has (connection, credentials' user name, SPF settings, fallback); the
// sealed password goes when the store saves it (Store.Update).
func (h *Smarthost) MakeCapture() {
	*h = Smarthost{Name: h.Name, Kind: KindCapture, SealedPassword: h.SealedPassword,
		SealedWebhookSecrets: h.SealedWebhookSecrets, Owner: h.Owner, Created: h.Created}
}

// validateCapture checks a capture smarthost: it connects to nothing, so
// every SMTP setting given is a mistake, named rather than ignored.
func (h *Smarthost) validateCapture() error {
	var given []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"preset", h.Preset != ""}, {"host", h.Host != ""}, {"port", h.Port != 0}, {"tls", h.TLS != ""},
		{"username", h.Username != ""}, {"ca_file", h.CAFile != ""}, {"spf_include", h.SPFInclude != ""},
		{"spf_ips", len(h.SPFIPs) > 0}, {"spf_policy", h.SPFPolicy != ""}, {"fallback", h.Fallback != ""},
	} {
		if f.set {
			given = append(given, f.key)
		}
	}
	if len(given) > 0 {
		return fmt.Errorf("smarthost %s is of kind capture: it keeps mail instead of sending it and connects to nothing, so it takes no %s (leave them out, or make it of kind smtp)",
			h.Name, strings.Join(given, ", "))
	}
	if h.Owner != "" {
		return fmt.Errorf("smarthost %s is the own SMTP server of user %s: it cannot be of kind capture", h.Name, h.Owner)
	}
	return nil
}

// SPFIdentityInclude returns the include domain for SPF: the smarthost's
// own, else its preset's, else the preset of its host.
func (h *Smarthost) SPFIdentityInclude() (include, title string) {
	title = h.Name
	if h.Preset != "" {
		if p, err := provider.Lookup(h.Preset); err == nil {
			title = p.Title
			include = p.SPFInclude
		}
	} else if p, ok := provider.ForHost(h.Host); ok {
		title = p.Title
		include = p.SPFInclude
	}
	if h.SPFInclude != "" {
		include = h.SPFInclude
	}
	return include, title
}

// ValidateName checks a smarthost name: letters, digits, '.', '-', '_',
// at most 64 bytes. "default" is reserved for the default route.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("smarthost name must not be empty")
	}
	if name == "default" {
		return errors.New(`"default" names the default route; choose another smarthost name`)
	}
	if name == "new" {
		// The web interface's form for adding one lives at /smarthosts/new.
		return errors.New(`"new" is reserved by the web interface; choose another smarthost name`)
	}
	if len(name) > 64 {
		return errors.New("smarthost name is longer than 64 bytes")
	}
	for _, r := range name {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_", r))) {
			return fmt.Errorf("smarthost name %q may contain only letters, digits, '.', '-' and '_'", name)
		}
	}
	return nil
}

// Mask shows a secret without revealing it: "****" and its last 6
// characters, or only "****" when it is shorter than 12 characters (where
// 6 characters would give away half of it).
func Mask(secret string) string {
	r := []rune(secret)
	if len(r) < 12 {
		return "****"
	}
	return "****" + string(r[len(r)-6:])
}

// Store keeps smarthosts in the shared store (package store).
type Store struct {
	db store.DB
	// mu guards aead: sealing and opening hold it for reading, RotateKey
	// for writing, so that no password is sealed under the old key after
	// the rotation re-encrypted the others, or opened with the old key
	// after the new ciphertexts were committed.
	mu      sync.RWMutex
	aead    cipher.AEAD
	keyPath string // "" when the key comes from the environment
	// resealers re-seal other stores' values at RotateKey (AlsoReseal).
	resealers []Resealer
	// version counts changes, so that caches (the delivery router) know
	// when to drop what they built.
	version atomic.Uint64
}

// Open opens (creating if needed) the smarthost buckets in db under the
// master key from the environment (KeyEnv) or keyPath, creating the key
// file on first use. It refuses a key that does not open the passwords
// already stored, and completes a key rotation a crash interrupted.
func Open(db store.DB, keyPath string) (*Store, error) {
	s := &Store{db: db, keyPath: keyPath}
	var candidates [][]byte
	createdKey := false // keyPath was made just now
	if env := os.Getenv(KeyEnv); env != "" {
		key, err := ParseKey(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		candidates = append(candidates, key)
		s.keyPath = ""
	} else {
		key, created, err := loadOrCreateKeyFile(keyPath)
		if err != nil {
			return nil, err
		}
		createdKey = created
		candidates = append(candidates, key)
		if pending, err := readKeyFile(keyPath + ".new"); err == nil {
			candidates = append(candidates, pending)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	chosen := -1
	err := db.Update(func(tx store.Tx) error {
		chosen = -1 // a shared store may run this more than once
		if _, err := tx.CreateBucketIfNotExists(bucket); err != nil {
			return err
		}
		kb, err := tx.CreateBucketIfNotExists(keyBucket)
		if err != nil {
			return err
		}
		check := kb.Get(checkKey)
		if check == nil {
			sealed, err := seal(newAEAD(candidates[0]), checkKey, []byte(checkText))
			if err != nil {
				return err
			}
			chosen = 0
			return kb.Put(checkKey, sealed)
		}
		for i, k := range candidates {
			if _, err := open(newAEAD(k), checkKey, check); err == nil {
				chosen = i
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening the smarthost store: %w", err)
	}
	if chosen < 0 {
		where := keyPath
		if s.keyPath == "" {
			where = KeyEnv
		}
		if db.Shared() {
			return nil, errOtherNodesKey(where, keyPath, createdKey)
		}
		return nil, fmt.Errorf("the master key from %s does not open the smarthost passwords in the database (they were sealed under another key): restore the original key file or %s", where, KeyEnv)
	}
	if chosen == 1 {
		// A rotation committed but did not get to rename the key file.
		if err := os.Rename(keyPath+".new", keyPath); err != nil {
			return nil, fmt.Errorf("finishing an interrupted key rotation: %w", err)
		}
		syncDir(filepath.Dir(keyPath))
	} else if len(candidates) > 1 {
		// A rotation did not commit: its new key was never used.
		os.Remove(keyPath + ".new")
	}
	s.aead = newAEAD(candidates[chosen])
	// Other nodes sharing the store change smarthosts too: caches built
	// on Version must see their changes as they see this node's.
	db.Watch(string(bucket), func([]byte) { s.version.Add(1) })
	return s, nil
}

// errOtherNodesKey is Open's refusal when the store is shared and the
// check value the first node stored does not open under this node's key:
// every node must seal and open with the same master key. A key file
// Open just created is removed, so that the one copied in is not
// mistaken for a key in use.
func errOtherNodesKey(where, keyPath string, created bool) error {
	if created {
		os.Remove(keyPath)
		syncDir(filepath.Dir(keyPath))
		where = keyPath + " (made just now: this node had none)"
	}
	return fmt.Errorf("the master key from %s is not the one the other relay nodes sharing this database use "+
		"(it does not open the smarthost passwords stored there): copy secrets.key from the data_dir of a node that "+
		"already uses this database (or set %s to its key) before starting this one; see docs/cluster.md", where, KeyEnv)
}

// ParseKey decodes a master key given as 64 hex digits or as base64 of
// 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("the master key must be 32 bytes, as 64 hex digits or base64 (generate one with `openssl rand -hex 32`)")
}

// NewKey returns a fresh random master key.
func NewKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// loadOrCreateKeyFile reads the key file, making it with a new key when
// there is none (created).
func loadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	key, err = readKeyFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, false, err
	}
	key = NewKey()
	if err := writeKeyFile(path, key); err != nil {
		return nil, false, err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return nil, false, fmt.Errorf("creating the master key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return key, true, nil
}

// writeKeyFile writes key to path+".tmp", fsynced, mode 0600.
func writeKeyFile(path string, key []byte) error {
	f, err := os.OpenFile(path+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("writing the master key file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the master key file %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func newAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // key length is checked by ParseKey and NewKey
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return a
}

func seal(a cipher.AEAD, ad, plain []byte) ([]byte, error) {
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, plain, ad), nil
}

func open(a cipher.AEAD, ad, sealed []byte) ([]byte, error) {
	if len(sealed) < a.NonceSize() {
		return nil, errors.New("sealed value is too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], ad)
}

// Version changes whenever a smarthost is added, changed or deleted, or
// the key is rotated.
func (s *Store) Version() uint64 { return s.version.Load() }

// Add stores a new smarthost with its password sealed.
func (s *Store) Add(h Smarthost, password string) (*Smarthost, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if strings.ContainsAny(password, "\r\n") {
		return nil, errors.New("password must not contain line breaks")
	}
	if h.Captures() && password != "" {
		return nil, errCapturePassword(h.Name)
	}
	if h.Kind == "" {
		h.Kind = KindSMTP
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	h.Created = time.Now().UTC()
	h.SealedPassword = nil
	if password != "" {
		sealed, err := seal(s.aead, []byte(h.Name), []byte(password))
		if err != nil {
			return nil, err
		}
		h.SealedPassword = sealed
	}
	err := s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get([]byte(h.Name)) != nil {
			return fmt.Errorf("%w: %s (use update, or delete it first)", ErrExists, h.Name)
		}
		if err := checkFallback(b, &h); err != nil {
			return err
		}
		return put(b, &h)
	})
	if err != nil {
		return nil, err
	}
	s.version.Add(1)
	return &h, nil
}

// Get returns the named smarthost or ErrNotFound.
func (s *Store) Get(name string) (*Smarthost, error) {
	var h *Smarthost
	err := s.db.View(func(tx store.Tx) error {
		var err error
		h, err = get(tx.Bucket(bucket), name)
		return err
	})
	return h, err
}

// List returns every smarthost, sorted by name.
func (s *Store) List() ([]*Smarthost, error) {
	var out []*Smarthost
	err := s.db.View(func(tx store.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			h, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			out = append(out, h)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Update applies change to the stored smarthost in one transaction; a
// non-nil password replaces the stored one. The name cannot change.
func (s *Store) Update(name string, password *string, change func(*Smarthost) error) error {
	return s.edit(name, func(b store.Bucket, h *Smarthost) error {
		if change != nil {
			if err := change(h); err != nil {
				return err
			}
		}
		h.Name = name
		if h.Kind == "" {
			h.Kind = KindSMTP
		}
		if err := h.Validate(); err != nil {
			return err
		}
		if err := checkFallback(b, h); err != nil {
			return err
		}
		if h.Captures() {
			if password != nil && *password != "" {
				return errCapturePassword(name)
			}
			if err := checkNotFallback(b, name); err != nil {
				return err
			}
			// A smarthost made of kind capture drops the SMTP password
			// with the rest of its SMTP settings.
			h.SealedPassword = nil
		}
		if password != nil {
			h.SealedPassword = nil
			if *password != "" {
				sealed, err := seal(s.aead, []byte(name), []byte(*password))
				if err != nil {
					return err
				}
				h.SealedPassword = sealed
			}
		}
		return nil
	})
}

// edit reads the stored smarthost name, lets change alter it and writes it
// back, in one transaction and under the key's read lock (change may seal
// with it); Version moves once that committed. b is the smarthosts
// bucket, for checks that read the others.
func (s *Store) edit(name string, change func(b store.Bucket, h *Smarthost) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(bucket)
		h, err := get(b, name)
		if err != nil {
			return err
		}
		if err := change(b, h); err != nil {
			return err
		}
		return put(b, h)
	})
	if err == nil {
		s.version.Add(1)
	}
	return err
}

// errCapturePassword refuses a password for a capture smarthost.
func errCapturePassword(name string) error {
	return fmt.Errorf("smarthost %s is of kind capture: it logs in nowhere, so it takes no password", name)
}

// checkNotFallback refuses to make name a capture smarthost while another
// smarthost fails over to it: a fallback must send the mail it takes.
func checkNotFallback(b store.Bucket, name string) error {
	return b.ForEach(func(k, v []byte) error {
		var h Smarthost
		if json.Unmarshal(v, &h) == nil && h.Fallback == name {
			return fmt.Errorf("smarthost %s is the fallback of smarthost %s, and a fallback must send the mail it takes: it cannot be of kind capture (change %s's fallback first)", name, h.Name, h.Name)
		}
		return nil
	})
}

// checkFallback checks that h's fallback exists, sends mail and is not a
// user's own SMTP server, whose credentials must carry no one else's mail.
func checkFallback(b store.Bucket, h *Smarthost) error {
	if h.Fallback == "" {
		return nil
	}
	if b.Get([]byte(h.Fallback)) == nil {
		return fmt.Errorf("fallback %q: %w", h.Fallback, ErrNotFound)
	}
	fb, err := get(b, h.Fallback)
	if err != nil {
		return err
	}
	if fb.Owner != "" {
		return fmt.Errorf("fallback %q is the own SMTP server of user %s: it cannot carry other users' mail", fb.Name, fb.Owner)
	}
	if fb.Captures() {
		// Failing over to capture would keep, unsent, mail that was
		// meant to leave: a fallback must send.
		return fmt.Errorf("fallback %q is of kind capture: it keeps mail instead of sending it, so it cannot take over another smarthost's mail", fb.Name)
	}
	return nil
}

// Delete removes a smarthost. usedBy, when not nil, lists the users still
// routed through it; Delete refuses while there are any, and while another
// smarthost names it as fallback. (The check and the delete are not one
// transaction across buckets owned by other packages; a user routed to a
// deleted smarthost has its mail wait, with a clear error, not misrouted.)
func (s *Store) Delete(name string, usedBy func(name string) ([]string, error)) error {
	if usedBy != nil {
		users, err := usedBy(name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return fmt.Errorf("%w: %s is the route of %s; move them first (outbound user route --from %s --smarthost OTHER, or --default)",
				ErrInUse, name, strings.Join(users, ", "), name)
		}
	}
	err := s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		err := b.ForEach(func(k, v []byte) error {
			var h Smarthost
			if json.Unmarshal(v, &h) == nil && h.Fallback == name {
				return fmt.Errorf("%w: %s is the fallback of smarthost %s; change that first", ErrInUse, name, h.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return b.Delete([]byte(name))
	})
	if err == nil {
		s.version.Add(1)
	}
	return err
}

// Password returns the decrypted password of a smarthost, for delivery and
// the connection test only. It must never be logged or shown.
func (s *Store) Password(name string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, err := s.Get(name)
	if err != nil {
		return "", err
	}
	return s.password(h)
}

// MaskedPassword returns the smarthost's password masked (see Mask), or ""
// when it has none.
func (s *Store) MaskedPassword(h *Smarthost) string {
	if len(h.SealedPassword) == 0 {
		return ""
	}
	s.mu.RLock()
	p, err := s.password(h)
	s.mu.RUnlock()
	if err != nil {
		return "(cannot decrypt)"
	}
	return Mask(p)
}

func (s *Store) password(h *Smarthost) (string, error) {
	if len(h.SealedPassword) == 0 {
		return "", nil
	}
	p, err := open(s.aead, []byte(h.Name), h.SealedPassword)
	if err != nil {
		return "", fmt.Errorf("cannot decrypt the password of smarthost %s: it was sealed under another master key (check %s or the key file%s), or the record was altered", h.Name, KeyEnv, s.sharedKeyHint())
	}
	return string(p), nil
}

// sharedKeyHint completes a "sealed under another master key" error when
// other nodes share the store: a rotation there changed the key under
// this node, which only a copy of that node's key file mends.
func (s *Store) sharedKeyHint() string {
	if !s.db.Shared() {
		return ""
	}
	return "; several nodes share this database: if the key was rotated on another node, copy its secrets.key here and restart this node (docs/cluster.md)"
}

// RotateKey re-encrypts every password under newKey in one transaction
// and makes newKey the key file's content (see the package comment for
// the crash order). It refuses when the key comes from the environment:
// the relay cannot change that; re-encrypting under a key the next start
// would not have would lock the passwords away.
// With a shared store the other nodes keep the old key until their key
// file is replaced by the new one and they restart (docs/cluster.md).
func (s *Store) RotateKey(newKey []byte) error {
	if len(newKey) != 32 {
		return errors.New("the new master key must be 32 bytes")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keyPath == "" {
		return fmt.Errorf("the master key comes from %s: the relay cannot rotate it; keys from the environment are managed by whoever sets it", KeyEnv)
	}
	if err := writeKeyFile(s.keyPath+".pending", newKey); err != nil {
		return err
	}
	// Step 1: the new key is durable under secrets.key.new before any
	// ciphertext depends on it.
	if err := os.Rename(s.keyPath+".pending.tmp", s.keyPath+".new"); err != nil {
		return fmt.Errorf("writing the new master key: %w", err)
	}
	syncDir(filepath.Dir(s.keyPath))
	oldA, newA := s.aead, newAEAD(newKey)
	// Step 2: every ciphertext and the check value change in one commit.
	err := s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(bucket)
		var all []*Smarthost
		err := b.ForEach(func(k, v []byte) error {
			h := new(Smarthost)
			if err := json.Unmarshal(v, h); err != nil {
				return fmt.Errorf("smarthost %q: %w", k, err)
			}
			all = append(all, h)
			return nil
		})
		if err != nil {
			return err
		}
		for _, h := range all {
			if len(h.SealedPassword) == 0 && len(h.SealedWebhookSecrets) == 0 {
				continue
			}
			if len(h.SealedPassword) > 0 {
				p, err := open(oldA, []byte(h.Name), h.SealedPassword)
				if err != nil {
					return fmt.Errorf("cannot decrypt the password of smarthost %s under the current key; nothing was changed", h.Name)
				}
				if h.SealedPassword, err = seal(newA, []byte(h.Name), p); err != nil {
					return err
				}
			}
			if len(h.SealedWebhookSecrets) > 0 {
				p, err := open(oldA, webhookAD(h.Name), h.SealedWebhookSecrets)
				if err != nil {
					return fmt.Errorf("cannot decrypt the webhook secrets of smarthost %s under the current key; nothing was changed", h.Name)
				}
				if h.SealedWebhookSecrets, err = seal(newA, webhookAD(h.Name), p); err != nil {
					return err
				}
			}
			if err := put(b, h); err != nil {
				return err
			}
		}
		for _, f := range s.resealers {
			err := f(tx, func(ad, sealed []byte) ([]byte, error) {
				p, err := open(oldA, ad, sealed)
				if err != nil {
					return nil, fmt.Errorf("cannot decrypt %s under the current key; nothing was changed", ad)
				}
				return seal(newA, ad, p)
			})
			if err != nil {
				return err
			}
		}
		check, err := seal(newA, checkKey, []byte(checkText))
		if err != nil {
			return err
		}
		return tx.Bucket(keyBucket).Put(checkKey, check)
	})
	if err != nil {
		os.Remove(s.keyPath + ".new")
		return err
	}
	s.aead = newA
	s.version.Add(1)
	// Step 3: the new key replaces the old file. Until this rename, Open
	// finds the new key in secrets.key.new.
	if err := os.Rename(s.keyPath+".new", s.keyPath); err != nil {
		return fmt.Errorf("the passwords are re-encrypted but %s.new could not replace %s (the next start finishes it): %w", s.keyPath, s.keyPath, err)
	}
	syncDir(filepath.Dir(s.keyPath))
	return nil
}

func get(b store.Bucket, name string) (*Smarthost, error) {
	v := b.Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return decodeRecord([]byte(name), v)
}

// decodeRecord reads a stored smarthost; one stored before kinds existed
// is of KindSMTP.
func decodeRecord(name, v []byte) (*Smarthost, error) {
	h := new(Smarthost)
	if err := json.Unmarshal(v, h); err != nil {
		return nil, fmt.Errorf("smarthost %q: %w", name, err)
	}
	if h.Kind == "" {
		h.Kind = KindSMTP
	}
	return h, nil
}

func put(b store.Bucket, h *Smarthost) error {
	v, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return b.Put([]byte(h.Name), v)
}
