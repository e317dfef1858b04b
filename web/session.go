package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"
)

// Who may be signed in: an operator (every page) or a sender (a relay
// user, its own pages only).
const (
	KindOperator = "operator"
	KindSender   = "sender"
)

// Session is one signed-in browser.
type Session struct {
	// ID is the cookie's value: 32 random bytes, base64url.
	ID string
	// Kind is KindOperator or KindSender; Name the operator's name or the
	// sender's SMTP login.
	Kind, Name string
	// CSRF is the token every POST of this session must carry (form
	// field "csrf" or header X-CSRF-Token).
	CSRF string
	// Credential fingerprints the password hash the account had at
	// sign-in (credentialOf): a changed password ends the session.
	Credential string
	// Created bounds the session's whole life (Lifetimes.Max); LastSeen
	// its idleness (Lifetimes.Idle).
	Created, LastSeen time.Time
	// Flash is the result of the last action, shown once on the next page.
	Flash *Flash
}

// Operator reports whether the session is an operator's.
func (s *Session) Operator() bool { return s.Kind == KindOperator }

// Flash is a one-time message after an action: "ok" or "error".
type Flash struct {
	Kind, Text string
}

// Lifetimes bound a session: idle for at most Idle (every request
// restarts it), and at most Max after sign-in whatever happens.
type Lifetimes struct {
	Idle, Max time.Duration
}

func (l Lifetimes) expired(s *Session, now time.Time) bool {
	return now.Sub(s.LastSeen) > l.Idle || now.Sub(s.Created) > l.Max
}

// SessionStore keeps the sessions on the server side; the cookie holds
// only the ID. It is an interface so that several relay nodes can later
// share sessions (in PostgreSQL); the in-memory one serves one process.
// Every method is safe for concurrent use.
type SessionStore interface {
	// Create stores a new session of the account kind/name, whose
	// password hash has the fingerprint credential (its ID, CSRF token
	// and times filled in here), and returns it.
	Create(kind, name, credential string, now time.Time) (*Session, error)
	// Get returns a copy of the session, or nil when there is none or it
	// expired at now (an expired session is deleted).
	Get(id string, now time.Time) (*Session, error)
	// Touch marks the session used at now, restarting its idle time, and
	// sets its flash (nil: none; the previous one is consumed either way).
	Touch(id string, now time.Time, flash *Flash) error
	// Delete ends the session; deleting an unknown one is no error.
	Delete(id string) error
	// DeleteByName ends every session of one account (an operator or user
	// removed, a password changed).
	DeleteByName(kind, name string) error
}

// MemorySessions is a SessionStore in this process's memory: sessions end
// when the relay restarts.
type MemorySessions struct {
	life Lifetimes
	mu   sync.Mutex
	m    map[string]*Session
}

// NewMemorySessions returns an empty store whose sessions live within life.
func NewMemorySessions(life Lifetimes) *MemorySessions {
	return &MemorySessions{life: life, m: make(map[string]*Session)}
}

var _ SessionStore = (*MemorySessions)(nil)

// Create implements SessionStore.
func (s *MemorySessions) Create(kind, name, credential string, now time.Time) (*Session, error) {
	sess := &Session{ID: randomToken(), Kind: kind, Name: name, CSRF: randomToken(), Credential: credential, Created: now, LastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Sign-ins are throttled, but forget expired sessions as new ones
	// come, so the map cannot grow for ever.
	for id, old := range s.m {
		if s.life.expired(old, now) {
			delete(s.m, id)
		}
	}
	s.m[sess.ID] = sess
	c := *sess
	return &c, nil
}

// Get implements SessionStore.
func (s *MemorySessions) Get(id string, now time.Time) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return nil, nil
	}
	if s.life.expired(sess, now) {
		delete(s.m, id)
		return nil, nil
	}
	c := *sess
	return &c, nil
}

// Touch implements SessionStore.
func (s *MemorySessions) Touch(id string, now time.Time, flash *Flash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.m[id]; ok {
		sess.LastSeen = now
		sess.Flash = flash
	}
	return nil
}

// Delete implements SessionStore.
func (s *MemorySessions) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// DeleteByName implements SessionStore.
func (s *MemorySessions) DeleteByName(kind, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.m {
		if sess.Kind == kind && sess.Name == name {
			delete(s.m, id)
		}
	}
	return nil
}

// credentialOf fingerprints a password hash for Session.Credential: not
// the hash itself, which need not sit in the session store.
func credentialOf(passwordHash []byte) string {
	sum := sha256.Sum256(passwordHash)
	return hex.EncodeToString(sum[:16])
}

// randomToken is 32 random bytes, base64url: session IDs and CSRF tokens.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
