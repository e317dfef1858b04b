package admin

import (
	"net/http"
	"time"
)

// TLSStatus is GET /api/tls: where the listeners' certificate comes from
// and how it stands, for `outbound doctor` and monitoring. The same
// certificate is served by 465, 587, the admin listener and the provider
// webhook listener.
type TLSStatus struct {
	// Source is "acme" (obtained and renewed by the relay, [acme]),
	// "file" ([tls] cert and key) or "self-signed" (generated in
	// data_dir/tls when neither is configured).
	Source string `json:"source"`
	// Names are the DNS names the certificate covers (for ACME: the names
	// asked for, even before the first certificate is obtained).
	Names []string `json:"names"`
	// Issuer is the certificate's issuer common name; empty while ACME
	// has not obtained a certificate yet.
	Issuer string `json:"issuer,omitempty"`
	// NotAfter is the certificate's expiry; zero while there is none.
	NotAfter time.Time `json:"not_after,omitzero"`
	// LastError is the last failure to obtain or renew the certificate
	// (ACME) or to reload it (SIGHUP); empty when the last attempt
	// succeeded.
	LastError string `json:"last_error,omitempty"`
}

func (a *api) registerTLS(mux *http.ServeMux) {
	mux.Handle("GET /api/tls", a.authed(a.showTLS))
}

func (a *api) showTLS(w http.ResponseWriter, r *http.Request) error {
	if a.TLS == nil {
		writeError(w, http.StatusNotImplemented, "this server does not report its certificate")
		return nil
	}
	writeJSON(w, http.StatusOK, a.TLS())
	return nil
}
