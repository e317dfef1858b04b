package autoconfig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tokens signs and verifies the profile links `outbound autoconfig link`
// prints: login and expiry, under an HMAC-SHA256 key derived from the
// admin token (TokenKey). Whoever can read the admin token can already
// act for every user, so the links give nothing new, and rotating the
// admin token revokes every link.
type Tokens struct {
	Key []byte
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// TokenKey derives the links' key from the admin token, bound to this
// one use so that the key signs nothing else.
func TokenKey(adminToken string) []byte {
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte("outbound autoconfig profile link v1"))
	return m.Sum(nil)
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Sign returns a token for login valid until expires: base64url of
// "login\x00unix-expiry" and of its MAC, joined by a dot.
func (t *Tokens) Sign(login string, expires time.Time) string {
	payload := login + "\x00" + strconv.FormatInt(expires.Unix(), 10)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(t.mac(payload))
}

func (t *Tokens) mac(payload string) []byte {
	m := hmac.New(sha256.New, t.Key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Verify returns the login a token names, or why it is refused.
func (t *Tokens) Verify(token string) (string, error) {
	enc := base64.RawURLEncoding
	p, s, ok := strings.Cut(token, ".")
	payload, err1 := enc.DecodeString(p)
	sig, err2 := enc.DecodeString(s)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(sig, t.mac(string(payload))) {
		return "", errors.New("the link is not valid: ask the operator for a new one")
	}
	login, exp, _ := strings.Cut(string(payload), "\x00")
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return "", errors.New("the link is not valid: ask the operator for a new one")
	}
	if t.now().After(time.Unix(unix, 0)) {
		return "", fmt.Errorf("the link expired at %s: ask the operator for a new one", time.Unix(unix, 0).UTC().Format(time.RFC3339))
	}
	return login, nil
}
