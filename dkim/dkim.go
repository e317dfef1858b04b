// Package dkim keeps per-domain DKIM signing keys and signs outgoing mail
// with them, so that a message sent through a smarthost whose envelope
// domain is the provider's still passes DMARC for the sender's own From
// domain (RFC 6376; Ed25519 per RFC 8463 beside RSA, which every verifier
// knows, both signing when both exist).
//
// Keys live in the shared store (package store), bucket "dkim-keys", one entry per
// domain and selector. Private keys are sealed under the relay's master
// key by the Sealer the store is given (the smarthost store's), with
// "dkim/<domain>/<selector>" as additional data so a sealed key cannot be
// moved onto another selector; the file never holds a key in the clear.
//
// Rotation adds new selectors and retires the old ones at once: a retired
// key signs nothing more but its record stays published (Records lists
// it) until its PublishUntil date, so that messages already signed with it
// and still in flight or in inboxes keep verifying.
package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"outbound/store"
)

// The algorithms a key may have.
const (
	Ed25519 = "ed25519"
	RSA     = "rsa"
)

// rsaBits is RFC 8301's recommendation: 1024 is no longer enough and
// 4096 does not fit every DNS provider's TXT record.
const rsaBits = 2048

// RetiredPublishFor is how long a retired key's record stays published:
// long enough for queued and retried messages (five days at most) and for
// recipients' servers that verify late.
const RetiredPublishFor = 14 * 24 * time.Hour

var bucket = []byte("dkim-keys")

// ErrNotFound is returned when a domain has no key.
var ErrNotFound = errors.New("no DKIM key")

// Sealer seals and opens secrets under the relay's master key
// (smarthost.Store is one; its key rotation re-seals ours too, through
// Store.Reseal).
type Sealer interface {
	// SealCommit runs commit with a seal function and keeps the master
	// key from changing until commit returns, so that the keys commit
	// seals and stores are re-sealed by any later rotation (a rotation
	// committing between a seal and its commit would leave the new key
	// sealed under a key nothing opens any more).
	SealCommit(commit func(seal func(ad, plain []byte) ([]byte, error)) error) error
	// Open opens what seal sealed with the same ad.
	Open(ad, sealed []byte) ([]byte, error)
}

// Key is one signing key as stored.
type Key struct {
	// Domain is the d= the key signs for, lowercased.
	Domain string `json:"domain"`
	// Selector is the s= of its signatures: the record lives at
	// <Selector>._domainkey.<Domain>.
	Selector string `json:"selector"`
	// Algorithm is Ed25519 or RSA.
	Algorithm string `json:"algorithm"`
	// PublicKey is the p= of the record: base64 of the raw Ed25519 key or
	// of the RSA key's SubjectPublicKeyInfo DER.
	PublicKey string `json:"public_key"`
	// SealedPrivate is the PKCS#8 DER private key sealed by the Sealer.
	SealedPrivate []byte `json:"sealed_private"`
	// Created is when keygen or rotate made the key.
	Created time.Time `json:"created"`
	// Retired is when rotate replaced the key (zero while it signs).
	Retired time.Time `json:"retired,omitzero"`
	// PublishUntil is the date until which a retired key's record must
	// stay in DNS; after it, Records no longer lists it.
	PublishUntil time.Time `json:"publish_until,omitzero"`
}

// Active says the key signs new messages.
func (k *Key) Active() bool { return k.Retired.IsZero() }

// RecordName is the DNS name of the key's TXT record.
func (k *Key) RecordName() string { return k.Selector + "._domainkey." + k.Domain }

// RecordValue is the key's TXT record (RFC 6376 §3.6.1, RFC 8463 §4.2).
func (k *Key) RecordValue() string {
	kt := "rsa"
	if k.Algorithm == Ed25519 {
		kt = "ed25519"
	}
	return "v=DKIM1; k=" + kt + "; p=" + k.PublicKey
}

// Record is one DNS record a domain should publish.
type Record struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
	// Note says why, or until when.
	Note string `json:"note,omitempty"`
}

// Store keeps the keys in the shared store and signs with the active ones.
type Store struct {
	db     store.DB
	sealer Sealer
	now    func() time.Time

	// mu guards signers, the opened active keys by domain, filled on
	// first use and dropped whenever a key changes: a signature must not
	// need an unseal and a key parse per message.
	mu      sync.Mutex
	signers map[string][]signingKey
}

type signingKey struct {
	selector string
	signer   crypto.Signer
}

// Open creates the bucket if needed. now may be nil (time.Now).
func Open(db store.DB, sealer Sealer, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, sealer: sealer, now: now, signers: map[string][]signingKey{}}
	// Another node sharing the store may add or retire a domain's keys:
	// its opened signers go, as after a change made here.
	db.Watch(string(bucket), s.changed)
	return s, nil
}

// changed drops the signers of the domain whose key key (domain NUL
// selector) changed; nil: every domain's.
func (s *Store) changed(key []byte) {
	if key == nil {
		s.mu.Lock()
		clear(s.signers)
		s.mu.Unlock()
		return
	}
	domain, _, _ := bytes.Cut(key, []byte{0})
	s.forget(string(domain))
}

// NormalizeDomain lowercases domain and checks it is a DNS name.
func NormalizeDomain(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") {
		return "", fmt.Errorf("%q is not a domain name", domain)
	}
	for _, label := range strings.Split(d, ".") {
		if err := checkLabel(label); err != nil {
			return "", fmt.Errorf("%q is not a domain name: %w", domain, err)
		}
	}
	return d, nil
}

// checkLabel accepts a DNS label of letters, digits and inner hyphens.
func checkLabel(label string) error {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("bad label %q", label)
	}
	for _, c := range label {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c >= 'A' && c <= 'Z') {
			return fmt.Errorf("bad character %q in %q", c, label)
		}
	}
	return nil
}

// Selectors returns the selector each algorithm gets for base: base
// itself for one algorithm; with both, base-ed25519 and base-rsa, because
// a selector has one TXT record and so one key (RFC 8463 §4.2). An empty
// base becomes "ob" and the date, so a rotation never repeats a name.
func Selectors(base, algorithms string, now time.Time) (map[string]string, error) {
	if base == "" {
		base = "ob" + now.UTC().Format("20060102")
	}
	base = strings.ToLower(base)
	for _, l := range strings.Split(base, ".") {
		if err := checkLabel(l); err != nil {
			return nil, fmt.Errorf("selector %q: %w", base, err)
		}
	}
	switch algorithms {
	case Ed25519, RSA:
		return map[string]string{algorithms: base}, nil
	case "", "both":
		return map[string]string{Ed25519: base + "-ed25519", RSA: base + "-rsa"}, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q: ed25519, rsa or both", algorithms)
}

func sealAD(domain, selector string) []byte { return []byte("dkim/" + domain + "/" + selector) }

func entryKey(domain, selector string) []byte { return []byte(domain + "\x00" + selector) }

// Generate makes new keys for domain under the selectors Selectors gives
// for selector and algorithms ("ed25519", "rsa", "both" or ""). A selector
// in use is refused. The domain's other keys keep signing.
func (s *Store) Generate(domain, selector, algorithms string) ([]*Key, error) {
	return s.add(domain, selector, algorithms, false)
}

// Rotate makes new keys for domain like Generate (with the algorithms its
// active keys have when algorithms is "") and retires its active keys in
// the same transaction: they sign nothing from now on and their records
// stay listed until PublishUntil. It returns the new keys and the retired.
func (s *Store) Rotate(domain, selector, algorithms string) (added, retired []*Key, err error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, nil, err
	}
	if algorithms == "" {
		keys, err := s.List(d)
		if err != nil {
			return nil, nil, err
		}
		has := map[string]bool{}
		for _, k := range keys {
			if k.Active() {
				has[k.Algorithm] = true
			}
		}
		switch {
		case len(has) == 0:
			return nil, nil, fmt.Errorf("%w for %s to rotate: run dkim keygen %s", ErrNotFound, d, d)
		case len(has) == 1 && has[Ed25519]:
			algorithms = Ed25519
		case len(has) == 1:
			algorithms = RSA
		}
	}
	added, err = s.add(d, selector, algorithms, true)
	if err != nil {
		return nil, nil, err
	}
	keys, err := s.List(d)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if !k.Retired.IsZero() && k.Retired.Equal(added[0].Created) {
			retired = append(retired, k)
		}
	}
	return added, retired, nil
}

func (s *Store) add(domain, selector, algorithms string, retireOthers bool) ([]*Key, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Second)
	sels, err := Selectors(selector, algorithms, now)
	if err != nil {
		return nil, err
	}
	var keys []*Key
	var ders [][]byte // the private keys in the clear, by keys' index
	for _, alg := range []string{Ed25519, RSA} {
		sel, ok := sels[alg]
		if !ok {
			continue
		}
		k, der, err := newKey(d, sel, alg, now)
		if err != nil {
			return nil, err
		}
		keys, ders = append(keys, k), append(ders, der)
	}
	// Generating (slow for RSA) is done; sealing and storing hold the
	// master key, so a key rotation waits for the commit.
	err = s.sealer.SealCommit(func(seal func(ad, plain []byte) ([]byte, error)) error {
		for i, k := range keys {
			var err error
			if k.SealedPrivate, err = seal(sealAD(k.Domain, k.Selector), ders[i]); err != nil {
				return err
			}
		}
		return s.store(d, keys, now, retireOthers)
	})
	s.forget(d)
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// store puts keys (new selectors of domain d) in one transaction,
// retiring d's active keys first when retireOthers.
func (s *Store) store(d string, keys []*Key, now time.Time, retireOthers bool) error {
	return s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(bucket)
		for _, k := range keys {
			if b.Get(entryKey(d, k.Selector)) != nil {
				return fmt.Errorf("selector %s of %s exists already: choose another with --selector", k.Selector, d)
			}
		}
		if retireOthers {
			c := b.Cursor()
			prefix := []byte(d + "\x00")
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				old := new(Key)
				if err := json.Unmarshal(v, old); err != nil {
					return err
				}
				if !old.Active() {
					continue
				}
				old.Retired, old.PublishUntil = now, now.Add(RetiredPublishFor)
				if err := put(b, old); err != nil {
					return err
				}
			}
		}
		for _, k := range keys {
			if err := put(b, k); err != nil {
				return err
			}
		}
		return nil
	})
}

func put(b store.Bucket, k *Key) error {
	v, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return b.Put(entryKey(k.Domain, k.Selector), v)
}

// newKey generates a key pair: the Key without SealedPrivate, and the
// private half as PKCS#8 DER for the caller to seal.
func newKey(domain, selector, alg string, now time.Time) (*Key, []byte, error) {
	var priv crypto.Signer
	var pub []byte
	switch alg {
	case Ed25519:
		p, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		priv, pub = sk, p
	default:
		sk, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, nil, err
		}
		if pub, err = x509.MarshalPKIXPublicKey(&sk.PublicKey); err != nil {
			return nil, nil, err
		}
		priv = sk
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return &Key{Domain: domain, Selector: selector, Algorithm: alg,
		PublicKey: base64.StdEncoding.EncodeToString(pub), Created: now}, der, nil
}

// List returns the keys of domain, or of every domain when domain is "",
// by domain and then creation.
func (s *Store) List(domain string) ([]*Key, error) {
	var prefix []byte
	if domain != "" {
		d, err := NormalizeDomain(domain)
		if err != nil {
			return nil, err
		}
		prefix = []byte(d + "\x00")
	}
	var keys []*Key
	err := s.db.View(func(tx store.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			key := new(Key)
			if err := json.Unmarshal(v, key); err != nil {
				return fmt.Errorf("dkim key %q: %w", k, err)
			}
			keys = append(keys, key)
		}
		return nil
	})
	slices.SortStableFunc(keys, func(a, b *Key) int {
		if c := strings.Compare(a.Domain, b.Domain); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Selector, b.Selector)
	})
	return keys, err
}

// Records returns the DNS records domain must publish for its keys: one
// TXT record per active key and per retired key still within its
// PublishUntil, then a DMARC suggestion. A domain without keys is
// ErrNotFound (wrapped), so a caller printing every record can say so.
func (s *Store) Records(domain string) ([]Record, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	keys, err := s.List(d)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []Record
	for _, k := range keys {
		r := Record{Name: k.RecordName(), Type: "TXT", Value: k.RecordValue()}
		switch {
		case k.Active():
			r.Note = "DKIM " + k.Algorithm + " key, signing"
		case now.Before(k.PublishUntil):
			r.Note = "DKIM " + k.Algorithm + " key, retired: keep published until " + k.PublishUntil.Format(time.DateOnly) + ", then remove"
		default:
			continue
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w for %s: run outbound dkim keygen %s", ErrNotFound, d, d)
	}
	out = append(out, DMARCSuggestion(d))
	return out, nil
}

// DMARCSuggestion is a first DMARC record for domain: p=none with
// aggregate reports, so the operator sees who sends as the domain before
// tightening to quarantine or reject; relaxed alignment, which the relay's
// d= (the From domain itself) satisfies.
func DMARCSuggestion(domain string) Record {
	return Record{Name: "_dmarc." + domain, Type: "TXT",
		Value: "v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:postmaster@" + domain,
		Note:  "DMARC suggestion: start with p=none, read the reports, then move to p=quarantine or p=reject; keep an existing record if you have one"}
}

func (s *Store) forget(domain string) {
	s.mu.Lock()
	delete(s.signers, domain)
	s.mu.Unlock()
}

// active returns domain's opened active keys (Ed25519 first), nil when
// it has none.
func (s *Store) active(domain string) ([]signingKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sk, ok := s.signers[domain]; ok {
		return sk, nil
	}
	// Two reads: a master key rotation that commits between reading the
	// keys and opening them re-sealed them under the key now in use.
	out, err := s.openActive(domain)
	if err != nil {
		out, err = s.openActive(domain)
	}
	if err != nil {
		return nil, err
	}
	s.signers[domain] = out
	return out, nil
}

// openActive reads domain's active keys and opens them, Ed25519 first.
func (s *Store) openActive(domain string) ([]signingKey, error) {
	keys, err := s.List(domain)
	if err != nil {
		return nil, err
	}
	var out []signingKey
	for _, k := range keys {
		if !k.Active() {
			continue
		}
		der, err := s.sealer.Open(sealAD(k.Domain, k.Selector), k.SealedPrivate)
		if err != nil {
			return nil, fmt.Errorf("cannot open the DKIM key %s of %s: sealed under another master key, or altered", k.Selector, k.Domain)
		}
		p, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("DKIM key %s of %s: %w", k.Selector, k.Domain, err)
		}
		signer, ok := p.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("DKIM key %s of %s cannot sign", k.Selector, k.Domain)
		}
		out = append(out, signingKey{selector: k.Selector, signer: signer})
	}
	slices.SortStableFunc(out, func(a, b signingKey) int {
		_, aEd := a.signer.(ed25519.PrivateKey)
		_, bEd := b.signer.(ed25519.PrivateKey)
		switch {
		case aEd == bEd:
			return 0
		case aEd:
			return -1
		}
		return 1
	})
	return out, nil
}

// SignedHeaders are the fields signed on every route: From twice, so no
// second From can be added (oversigning, RFC 6376 §8.15); the others are
// signed even when absent, so none can be added later either.
var signedHeaders = []string{"From", "From", "To", "Cc", "Subject", "Reply-To",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding"}

// Sign returns the DKIM-Signature fields (CRLF-terminated, to prepend to
// msg) of domain's active keys over msg, relaxed/relaxed, signing Date and
// Message-ID too unless rewritten lists them (the upstream replaces
// them, and a signature over them would break). It returns nil when the
// domain has no active key.
func (s *Store) Sign(domain string, msg []byte, rewritten []string) ([]byte, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return nil, nil // no key can exist for it
	}
	keys, err := s.active(d)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	headers := slices.Clone(signedHeaders)
	for _, h := range []string{"Date", "Message-ID"} {
		if !slices.ContainsFunc(rewritten, func(r string) bool { return strings.EqualFold(r, h) }) {
			headers = append(headers, h)
		}
	}
	var out bytes.Buffer
	for _, k := range keys {
		signer, err := msgdkim.NewSigner(&msgdkim.SignOptions{
			Domain: d, Selector: k.selector, Signer: k.signer, Hash: crypto.SHA256,
			HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
			BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
			HeaderKeys:             headers,
		})
		if err != nil {
			return nil, err
		}
		if _, err := signer.Write(msg); err != nil {
			signer.Close()
			return nil, err
		}
		if err := signer.Close(); err != nil {
			return nil, err
		}
		out.WriteString(signer.Signature())
	}
	return out.Bytes(), nil
}

// Reseal re-seals every private key with reseal, inside tx: the master
// key rotation (smarthost.Store.AlsoReseal) calls it.
func (s *Store) Reseal(tx store.Tx, reseal func(ad, sealed []byte) ([]byte, error)) error {
	b := tx.Bucket(bucket)
	var all []*Key
	err := b.ForEach(func(_, v []byte) error {
		k := new(Key)
		if err := json.Unmarshal(v, k); err != nil {
			return err
		}
		all = append(all, k)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range all {
		if k.SealedPrivate, err = reseal(sealAD(k.Domain, k.Selector), k.SealedPrivate); err != nil {
			return err
		}
		if err := put(b, k); err != nil {
			return err
		}
	}
	return nil
}

// Quoted is a TXT value in zone-file form: quoted strings of at most 255
// octets each, as DNS requires for a long value (an RSA key is about 400);
// resolvers join them back into one.
func Quoted(value string) string {
	var parts []string
	for v := value; ; {
		n := min(len(v), 255)
		parts = append(parts, `"`+v[:n]+`"`)
		if v = v[n:]; v == "" {
			break
		}
	}
	return strings.Join(parts, " ")
}
