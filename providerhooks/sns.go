package providerhooks

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// This file is Amazon SNS's side of the SES webhook: the envelope SNS POSTs
// to an HTTP(S) subscriber, its signature, and the signing certificate. The
// signature scheme is the one in "Verifying the signatures of Amazon SNS
// messages" (docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html).

// snsMessage is the JSON document SNS POSTs. Subject is a pointer because the
// string to sign includes it only when the key is present.
type snsMessage struct {
	Type             string  `json:"Type"`
	MessageID        string  `json:"MessageId"`
	Token            string  `json:"Token"`
	TopicArn         string  `json:"TopicArn"`
	Subject          *string `json:"Subject"`
	Message          string  `json:"Message"`
	SubscribeURL     string  `json:"SubscribeURL"`
	Timestamp        string  `json:"Timestamp"`
	SignatureVersion string  `json:"SignatureVersion"`
	Signature        string  `json:"Signature"`
	SigningCertURL   string  `json:"SigningCertURL"`
}

// The SNS message types.
const (
	snsNotification             = "Notification"
	snsSubscriptionConfirmation = "SubscriptionConfirmation"
	snsUnsubscribeConfirmation  = "UnsubscribeConfirmation"
)

// stringToSign is what SNS signed: "name\nvalue\n" for a fixed list of
// fields in a fixed (alphabetical) order, which differs between
// notifications and (un)subscription confirmations. Subject is included
// only when the message has one.
func (m *snsMessage) stringToSign() (string, error) {
	var b strings.Builder
	add := func(name, value string) {
		b.WriteString(name)
		b.WriteByte('\n')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	switch m.Type {
	case snsNotification:
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		if m.Subject != nil {
			add("Subject", *m.Subject)
		}
		add("Timestamp", m.Timestamp)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	case snsSubscriptionConfirmation, snsUnsubscribeConfirmation:
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		add("SubscribeURL", m.SubscribeURL)
		add("Timestamp", m.Timestamp)
		add("Token", m.Token)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	default:
		return "", fmt.Errorf("unknown SNS message type %q", m.Type)
	}
	return b.String(), nil
}

// isSNSHost reports whether host is one SNS serves signing certificates
// and subscription URLs from: sns.<region>.amazonaws.com, and
// sns.<region>.amazonaws.com.cn in the China regions.
func isSNSHost(host string) bool {
	rest, ok := strings.CutPrefix(host, "sns.")
	if !ok {
		return false
	}
	region, ok := strings.CutSuffix(rest, ".amazonaws.com")
	if !ok {
		region, ok = strings.CutSuffix(rest, ".amazonaws.com.cn")
	}
	if !ok || region == "" {
		return false
	}
	for _, c := range region {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// CheckSNSURL refuses any URL that is not https on Amazon's SNS hosts
// (default port, no user info). Every URL taken from a message (the signing
// certificate, the subscription URL) passes it before anything is fetched:
// otherwise anyone could make the relay fetch a key of their own, or make
// it request any address (SSRF).
func CheckSNSURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("SNS URL %q does not parse", raw)
	}
	if u.Scheme != "https" || u.User != nil || u.Port() != "" || !isSNSHost(u.Hostname()) {
		return nil, fmt.Errorf("SNS URL %q is not https on an sns.<region>.amazonaws.com host", raw)
	}
	return u, nil
}

// Fetcher GETs a URL and returns its body. The SES verifier fetches signing
// certificates and confirms subscriptions through it, only with URLs that
// passed CheckSNSURL; tests inject one that serves a test certificate.
type Fetcher interface {
	Get(ctx context.Context, url string) ([]byte, error)
}

// maxSNSBody bounds what the fetcher reads: a certificate is about 2 KB, a
// subscription confirmation's reply a few hundred bytes.
const maxSNSBody = 64 << 10

// SNSFetcher is the default Fetcher: HTTPS only to SNS hosts (it checks
// again, so no caller can forget), the server's certificate verified
// against the system's roots, no redirects, a timeout and a size limit.
type SNSFetcher struct {
	client *http.Client
}

// NewSNSFetcher returns the default fetcher with the given timeout for a
// whole request (10 s when zero).
func NewSNSFetcher(timeout time.Duration) *SNSFetcher {
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &SNSFetcher{client: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			// No proxy from the environment: the request goes to Amazon.
			Proxy:               nil,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: timeout,
		},
		// A redirect could lead anywhere; SNS does not redirect.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Get fetches url after checking it is on an SNS host.
func (f *SNSFetcher) Get(ctx context.Context, raw string) ([]byte, error) {
	if _, err := CheckSNSURL(raw); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", raw, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSNSBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxSNSBody {
		return nil, fmt.Errorf("GET %s: more than %d bytes", raw, maxSNSBody)
	}
	return body, nil
}

// maxCachedCerts bounds the certificate cache. SNS uses one certificate
// per region at a time, so a handful is plenty; the bound keeps a stream
// of distinct (valid-host) URLs from growing memory.
const maxCachedCerts = 32

// snsCerts fetches signing certificates and caches them by URL: SNS signs
// every message of a region with the same certificate, so a busy topic
// costs one fetch, not one per message.
type snsCerts struct {
	fetch Fetcher
	mu    sync.Mutex
	byURL map[string]*x509.Certificate
}

func newSNSCerts(f Fetcher) *snsCerts {
	return &snsCerts{fetch: f, byURL: make(map[string]*x509.Certificate)}
}

// get returns the certificate at raw, which must pass CheckSNSURL (checked
// here before any fetch), currently valid and with an RSA key. A failure to
// get it is a plain error (answered 500: SNS retries, and the next fetch
// may work); a certificate that is not valid now is Unauthorized.
//
// The certificate's chain is not verified against the system roots: SNS
// serves the signing certificate alone, without its intermediate, so such
// a check fails for every real message (robbiet480/go.sns#8 added it and
// reverted it). What makes the certificate Amazon's is where it came from:
// an SNS host over HTTPS, whose server certificate the fetcher verified
// against the system roots.
func (c *snsCerts) get(ctx context.Context, raw string, now time.Time) (*x509.Certificate, error) {
	if _, err := CheckSNSURL(raw); err != nil {
		return nil, err
	}
	c.mu.Lock()
	cert := c.byURL[raw]
	c.mu.Unlock()
	if cert == nil {
		body, err := c.fetch.Get(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("fetching the SNS signing certificate: %w", err)
		}
		block, _ := pem.Decode(body)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("the SNS signing certificate at %s is not PEM", raw)
		}
		cert, err = x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the SNS signing certificate at %s: %w", raw, err)
		}
		if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("the SNS signing certificate at %s has no RSA key", raw)
		}
		c.mu.Lock()
		if len(c.byURL) >= maxCachedCerts {
			clear(c.byURL)
		}
		c.byURL[raw] = cert
		c.mu.Unlock()
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, Unauthorized("the SNS signing certificate at %s is not valid now", raw)
	}
	return cert, nil
}

// verifySignature checks m's signature with cert's key: SignatureVersion 1
// is RSA PKCS#1 v1.5 over SHA-1, version 2 over SHA-256.
func (m *snsMessage) verifySignature(cert *x509.Certificate) error {
	text, err := m.stringToSign()
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return errors.New("the SNS signature is not base64")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("the SNS signing certificate has no RSA key")
	}
	var hash crypto.Hash
	var sum []byte
	switch m.SignatureVersion {
	case "1":
		h := sha1.Sum([]byte(text))
		hash, sum = crypto.SHA1, h[:]
	case "2":
		h := sha256.Sum256([]byte(text))
		hash, sum = crypto.SHA256, h[:]
	default:
		return fmt.Errorf("unknown SNS SignatureVersion %q", m.SignatureVersion)
	}
	if err := rsa.VerifyPKCS1v15(pub, hash, sum, sig); err != nil {
		return errors.New("the SNS signature does not match")
	}
	return nil
}

// parseSNS decodes an SNS POST body and checks that the fields every type
// needs are there.
func parseSNS(body []byte) (*snsMessage, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("the SNS message is not JSON: %w", err)
	}
	if m.MessageID == "" || m.Timestamp == "" || m.Signature == "" || m.SigningCertURL == "" || m.TopicArn == "" {
		return nil, errors.New("the SNS message lacks MessageId, Timestamp, TopicArn, Signature or SigningCertURL")
	}
	if _, err := m.stringToSign(); err != nil {
		return nil, err
	}
	return &m, nil
}
