// Package auth owns the relay's users: their password hashes, the senders
// each may use, and the verification of SMTP AUTH credentials (with an
// in-memory cache so that clients opening one connection per message do not
// pay a bcrypt hash each time).
//
// On disk, in the shared store (package store), bucket "users" maps a
// login name to the JSON form of User. Passwords are stored only as bcrypt hashes.
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"outbound/quota"
	"outbound/store"
)

var usersBucket = []byte("users")

// ErrNoSuchUser is returned for a login that does not exist.
var ErrNoSuchUser = errors.New("no such user")

// ErrUserExists is returned when adding a login that is already taken.
var ErrUserExists = errors.New("user already exists")

// User is one SMTP login: an app or a person.
type User struct {
	// Name is the login, usually an e-mail address, sometimes a key name.
	Name string `json:"name"`
	// PasswordHash is the bcrypt hash of the password; read by Verify.
	PasswordHash []byte `json:"password_hash"`
	// AllowFrom lists the extra addresses ("bob@example.com") and domains
	// ("example.com") the user may send as, besides its own login when that
	// is an address. Read by MaySendAs.
	AllowFrom []string `json:"allow_from,omitempty"`
	// Route names the user's smarthost; empty means the default route.
	// Read by delivery when the user's messages are queued.
	Route string `json:"route,omitempty"`
	// Limits overrides the route's default sending limits when set
	// ({"per_hour": N, "per_day": N}); read through package route by the
	// relay's quota check and the admin API. Kept within
	// limits.max_per_day by route.Router.CheckLimits.
	Limits *quota.Limits `json:"limits,omitempty"`
	// SPFPolicy overrides the route's SPF policy ("off", "warn",
	// "enforce") when set; read by the relay.
	SPFPolicy string `json:"spf_policy,omitempty"`
	// DisplayName is the name the relay puts in a From header that has
	// only an address ("Alice Example" <alice@example.com>); empty means
	// none. It never replaces a name the client set. Checked by
	// ValidateDisplayName; read by the relay.
	DisplayName string `json:"display_name,omitempty"`
	// ReplyTo is the address (optionally with a name) the relay adds as
	// Reply-To to messages that have none; empty means none. It never
	// replaces a Reply-To the client set. Checked by ValidateReplyTo; read
	// by the relay.
	ReplyTo string `json:"reply_to,omitempty"`
	// DSNOff turns off the delivery status notifications (bounces, delay
	// warnings) the relay sends about the user's messages, for a user
	// that learns their fate from webhooks instead; the zero value keeps
	// them on. Read by delivery when it would queue one.
	DSNOff bool `json:"dsn_off,omitempty"`
	// Created is when the user was added.
	Created time.Time `json:"created"`
}

// MaySendAs reports whether addr is a sender this user may use: its own
// login when that is an address, or one of AllowFrom (address or domain).
// Comparison is case-insensitive, as mail operators expect.
func (u *User) MaySendAs(addr string) bool {
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	if at < 1 || at == len(addr)-1 {
		return false
	}
	domain := addr[at+1:]
	if strings.EqualFold(u.Name, addr) {
		return true
	}
	for _, a := range u.AllowFrom {
		a = strings.ToLower(strings.TrimPrefix(a, "@"))
		if a == addr || (!strings.Contains(a, "@") && a == domain) {
			return true
		}
	}
	return false
}

// ValidateName checks a login name: printable, no spaces, at most 254 bytes.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("user name must not be empty")
	}
	if len(name) > 254 {
		return errors.New("user name is longer than 254 bytes")
	}
	if name == "new" {
		// The web interface's form for adding one lives at /users/new.
		return errors.New(`"new" is reserved by the web interface; choose another user name (usually the e-mail address)`)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("user name %q must not contain spaces or control characters", name)
		}
	}
	return nil
}

// ValidateAllowFrom checks one allowed sender: an address or a bare domain.
func ValidateAllowFrom(s string) error {
	s = strings.TrimPrefix(s, "@")
	if strings.Contains(s, "@") {
		if _, err := mail.ParseAddress(s); err != nil {
			return fmt.Errorf("allowed sender %q is not a valid address", s)
		}
		return nil
	}
	if s == "" || strings.ContainsAny(s, " \t/\\<>") || !strings.Contains(s, ".") {
		return fmt.Errorf("allowed sender %q is neither an address nor a domain like example.com", s)
	}
	return nil
}

// MaxDisplayNameBytes bounds a user's default display name, so that the
// From header it goes into stays well within the 998-byte line limit.
const MaxDisplayNameBytes = 200

// ValidateDisplayName checks a default display name: valid UTF-8, no line
// breaks or other control characters (they would break or inject header
// lines), at most MaxDisplayNameBytes bytes. Empty is allowed: no name.
func ValidateDisplayName(s string) error {
	if len(s) > MaxDisplayNameBytes {
		return fmt.Errorf("display name is %d bytes long: at most %d are allowed", len(s), MaxDisplayNameBytes)
	}
	if !utf8.ValidString(s) {
		return errors.New("display name is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("display name %q must not contain line breaks or control characters", s)
		}
	}
	return nil
}

// ValidateReplyTo checks a default Reply-To: one address as net/mail
// parses it ("help@example.com" or "Support <help@example.com>"), without
// line breaks or control characters. Empty is allowed: no Reply-To.
func ValidateReplyTo(s string) error {
	if s == "" {
		return nil
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("reply-to %q must not contain line breaks or control characters", s)
		}
	}
	if len(s) > 500 {
		return fmt.Errorf("reply-to is %d bytes long: at most 500 are allowed", len(s))
	}
	_, err := mail.ParseAddress(s)
	if err == nil && strings.HasSuffix(strings.TrimSpace(s), ";") {
		err = errors.New("a group is not an address")
	}
	if err != nil {
		return fmt.Errorf("reply-to %q is not one valid address (like help@example.com or \"Support <help@example.com>\"): %s",
			s, strings.TrimPrefix(err.Error(), "mail: "))
	}
	return nil
}

// ValidatePassword enforces a minimum so that an operator cannot hand out
// trivially guessable SMTP credentials.
func ValidatePassword(p string) error {
	if len(p) < 8 {
		return errors.New("password must be at least 8 characters")
	}
	if strings.ContainsAny(p, "\r\n") {
		return errors.New("password must not contain line breaks")
	}
	return nil
}

// Store keeps users in the shared store (package store).
type Store struct {
	db    store.DB
	cache *verifyCache
	// cost is the bcrypt cost; tests lower it.
	cost int
}

// NewStore opens (creating if needed) the users bucket in db.
func NewStore(db store.DB) (*Store, error) {
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(usersBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating users bucket: %w", err)
	}
	return &Store{db: db, cache: newVerifyCache(), cost: bcrypt.DefaultCost}, nil
}

// SetHashCost changes the bcrypt cost of newly set passwords. Only tests
// lower it, to keep them fast.
func (s *Store) SetHashCost(cost int) { s.cost = cost }

// Add creates a user with the given password.
func (s *Store) Add(name, password string, allowFrom []string) (*User, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := ValidatePassword(password); err != nil {
		return nil, err
	}
	for _, a := range allowFrom {
		if err := ValidateAllowFrom(a); err != nil {
			return nil, err
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return nil, fmt.Errorf("hashing password: %w", err)
	}
	u := &User{Name: name, PasswordHash: hash, AllowFrom: allowFrom, Created: time.Now().UTC()}
	err = s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(usersBucket)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("%w: %s", ErrUserExists, name)
		}
		return putUser(b, u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Get returns the named user or ErrNoSuchUser.
func (s *Store) Get(name string) (*User, error) {
	var u *User
	err := s.db.View(func(tx store.Tx) error {
		var err error
		u, err = getUser(tx.Bucket(usersBucket), name)
		return err
	})
	return u, err
}

// List returns every user, sorted by name.
func (s *Store) List() ([]*User, error) {
	var users []*User
	err := s.db.View(func(tx store.Tx) error {
		return tx.Bucket(usersBucket).ForEach(func(k, v []byte) error {
			u := new(User)
			if err := json.Unmarshal(v, u); err != nil {
				return fmt.Errorf("user %q: %w", k, err)
			}
			users = append(users, u)
			return nil
		})
	})
	sort.Slice(users, func(i, j int) bool { return users[i].Name < users[j].Name })
	return users, err
}

// Delete removes a user.
func (s *Store) Delete(name string) error {
	err := s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(usersBucket)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, name)
		}
		return b.Delete([]byte(name))
	})
	s.cache.forget(name)
	return err
}

// SetPassword replaces a user's password and drops its cached verification.
func (s *Store) SetPassword(name, password string) error {
	if err := ValidatePassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return fmt.Errorf("hashing password: %w", err)
	}
	err = s.Update(name, func(u *User) error {
		u.PasswordHash = hash
		return nil
	})
	s.cache.forget(name)
	return err
}

// Update applies change to the stored user in one transaction.
func (s *Store) Update(name string, change func(*User) error) error {
	return s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(usersBucket)
		u, err := getUser(b, name)
		if err != nil {
			return err
		}
		if err := change(u); err != nil {
			return err
		}
		return putUser(b, u)
	})
}

// SetRoute puts every named user on route ("" = the default route) in one
// transaction: if any name does not exist, no user is changed. It returns
// the names changed.
func (s *Store) SetRoute(names []string, route string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("no users given")
	}
	err := s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(usersBucket)
		for _, name := range names {
			u, err := getUser(b, name)
			if err != nil {
				return err
			}
			u.Route = route
			if err := putUser(b, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// MoveRoute puts every user on route from onto route to, in one
// transaction, and returns their names (sorted).
func (s *Store) MoveRoute(from, to string) ([]string, error) {
	var moved []string
	err := s.db.Update(func(tx store.Tx) error {
		moved = nil // a shared store may run this more than once
		b := tx.Bucket(usersBucket)
		var users []*User
		err := b.ForEach(func(k, v []byte) error {
			u := new(User)
			if err := json.Unmarshal(v, u); err != nil {
				return fmt.Errorf("user %q: %w", k, err)
			}
			if u.Route == from {
				users = append(users, u)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, u := range users {
			u.Route = to
			if err := putUser(b, u); err != nil {
				return err
			}
			moved = append(moved, u.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(moved)
	return moved, nil
}

// Verify checks a login and password. It returns the user on success and
// ErrBadCredentials otherwise, taking about as long for an unknown user as
// for a wrong password so that logins cannot be enumerated by timing. At
// most one bcrypt comparison per CPU runs at once; further calls wait for
// one to finish.
func (s *Store) Verify(name, password string) (*User, error) {
	u, err := s.Get(name)
	if errors.Is(err, ErrNoSuchUser) {
		// Spend a hash anyway: an unknown login should cost what a known
		// one does, and waits for a slot like one.
		s.cache.slowCompare(dummyHash(), []byte(password))
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if s.cache.matches(name, u.PasswordHash, password) {
		return u, nil
	}
	if !s.cache.check(name, u.PasswordHash, password) {
		return nil, ErrBadCredentials
	}
	return u, nil
}

// ErrBadCredentials is returned by Verify for a wrong login or password.
var ErrBadCredentials = errors.New("invalid user name or password")

// dummyHash is a bcrypt hash compared against when the login does not
// exist. Computed on first use: CLI commands never need it.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("outbound-no-such-user"), bcrypt.DefaultCost)
	return h
})

func getUser(b store.Bucket, name string) (*User, error) {
	v := b.Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchUser, name)
	}
	u := new(User)
	if err := json.Unmarshal(v, u); err != nil {
		return nil, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

func putUser(b store.Bucket, u *User) error {
	v, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return b.Put([]byte(u.Name), v)
}
