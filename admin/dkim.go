package admin

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"outbound/dkim"
)

// The DKIM endpoints (operators only): a domain's signing keys, made,
// rotated and listed, and the DNS records they need. Private keys never
// leave the store; the API shows public keys and records only.

func (a *api) registerDKIM(mux *http.ServeMux) {
	mux.Handle("GET /api/dkim", a.authed(a.listDKIM))
	mux.Handle("POST /api/dkim/{domain}/keys", a.authed(a.generateDKIM))
	mux.Handle("POST /api/dkim/{domain}/rotate", a.authed(a.rotateDKIM))
	mux.Handle("GET /api/dkim/{domain}/records", a.authed(a.dkimRecords))
}

// DKIMKey is a signing key as the API shows it: never the private key.
type DKIMKey struct {
	Domain    string `json:"domain"`
	Selector  string `json:"selector"`
	Algorithm string `json:"algorithm"`
	// Active says the key signs new messages; a retired key does not.
	Active  bool      `json:"active"`
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
	// PublishUntil is when a retired key's record may leave DNS.
	PublishUntil time.Time `json:"publish_until,omitzero"`
	// Record is the TXT record at RecordName.
	RecordName string `json:"record_name"`
	Record     string `json:"record"`
}

func viewDKIMKey(k *dkim.Key) DKIMKey {
	return DKIMKey{Domain: k.Domain, Selector: k.Selector, Algorithm: k.Algorithm, Active: k.Active(),
		Created: k.Created, Retired: k.Retired, PublishUntil: k.PublishUntil,
		RecordName: k.RecordName(), Record: k.RecordValue()}
}

func viewDKIMKeys(keys []*dkim.Key) []DKIMKey {
	out := []DKIMKey{}
	for _, k := range keys {
		out = append(out, viewDKIMKey(k))
	}
	return out
}

// DKIMKeyRequest is the body of POST /api/dkim/{domain}/keys and
// .../rotate: both fields optional.
type DKIMKeyRequest struct {
	// Selector is the selector, or its base when both algorithms are
	// made (base-ed25519, base-rsa); "" is "ob" and today's date.
	Selector string `json:"selector,omitempty"`
	// Algorithm is "ed25519", "rsa" or "both" ("": both for keys, the
	// active keys' algorithms for rotate).
	Algorithm string `json:"algorithm,omitempty"`
}

// DKIMKeysResult answers keygen and rotate: the new keys, the keys
// rotate retired, and every record the domain's keys now need.
type DKIMKeysResult struct {
	Added   []DKIMKey     `json:"added"`
	Retired []DKIMKey     `json:"retired"`
	Records []dkim.Record `json:"records"`
}

// dkimStore answers 501 when the server has no DKIM store.
func (a *api) dkimStore() (*dkim.Store, error) {
	if a.DKIM == nil {
		return nil, &httpError{status: http.StatusNotImplemented, msg: "DKIM signing is not configured on this server"}
	}
	return a.DKIM, nil
}

// dkimError maps the store's errors to statuses: an unknown domain 404,
// what the caller can fix 400.
func dkimError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dkim.ErrNotFound):
		return &httpError{status: http.StatusNotFound, msg: err.Error()}
	case strings.Contains(err.Error(), "exists already"):
		return &httpError{status: http.StatusConflict, msg: err.Error()}
	case strings.Contains(err.Error(), "not a domain name"), strings.Contains(err.Error(), "selector"),
		strings.Contains(err.Error(), "algorithm"):
		return badRequest("%s", err.Error())
	}
	return err
}

func (a *api) listDKIM(w http.ResponseWriter, r *http.Request) error {
	s, err := a.dkimStore()
	if err != nil {
		return err
	}
	keys, err := s.List(r.URL.Query().Get("domain"))
	if err != nil {
		return dkimError(err)
	}
	writeJSON(w, http.StatusOK, viewDKIMKeys(keys))
	return nil
}

func (a *api) generateDKIM(w http.ResponseWriter, r *http.Request) error {
	return a.changeDKIM(w, r, false)
}

func (a *api) rotateDKIM(w http.ResponseWriter, r *http.Request) error {
	return a.changeDKIM(w, r, true)
}

func (a *api) changeDKIM(w http.ResponseWriter, r *http.Request, rotate bool) error {
	s, err := a.dkimStore()
	if err != nil {
		return err
	}
	var req DKIMKeyRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	domain := r.PathValue("domain")
	var added, retired []*dkim.Key
	if rotate {
		added, retired, err = s.Rotate(domain, req.Selector, req.Algorithm)
	} else {
		added, err = s.Generate(domain, req.Selector, req.Algorithm)
	}
	if err != nil {
		return dkimError(err)
	}
	records, err := s.Records(domain)
	if err != nil {
		return err
	}
	a.Logger.Info("dkim keys made", "domain", added[0].Domain, "rotate", rotate, "added", len(added), "retired", len(retired))
	writeJSON(w, http.StatusCreated, DKIMKeysResult{Added: viewDKIMKeys(added), Retired: viewDKIMKeys(retired), Records: records})
	return nil
}

func (a *api) dkimRecords(w http.ResponseWriter, r *http.Request) error {
	s, err := a.dkimStore()
	if err != nil {
		return err
	}
	records, err := s.Records(r.PathValue("domain"))
	if err != nil {
		return dkimError(err)
	}
	writeJSON(w, http.StatusOK, records)
	return nil
}
