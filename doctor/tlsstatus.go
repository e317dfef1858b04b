package doctor

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"outbound/admin"
)

// checkTLSStatus reports what the relay says of its certificate (GET
// /api/tls): where it comes from and whether the last attempt to obtain,
// renew or reload it failed. The listener checks see the certificate
// served now; this one sees a renewal failing before the certificate
// expires. A relay that does not report it (501) gets no result.
func checkTLSStatus(o *Options) []Result {
	if o.API == nil {
		return nil
	}
	const name = "certificate renewal"
	st, err := o.API.TLS()
	var apiErr *admin.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotImplemented:
		return nil
	case err != nil:
		return []Result{fail(name, err.Error(), "start `outbound serve` and check [admin] listen")}
	}
	detail := fmt.Sprintf("source %s for %s", st.Source, strings.Join(st.Names, ", "))
	if st.Issuer != "" {
		detail += ", issued by " + st.Issuer
	}
	if !st.NotAfter.IsZero() {
		detail += ", expires " + st.NotAfter.UTC().Format(time.RFC3339)
	}
	fix := "fix the [tls] cert and key files, then send SIGHUP (systemctl reload outbound)"
	if st.Source == "acme" {
		fix = "check [acme] and the relay's log: each name must resolve to this host, and the CA must reach port 80 (http-01) or 443 (tls-alpn-01) on it"
	}
	switch {
	case st.LastError != "":
		return []Result{fail(name, detail+"; the last attempt failed: "+st.LastError, fix)}
	case st.Source == "acme" && st.NotAfter.IsZero():
		return []Result{fail(name, detail+"; no certificate obtained yet (the listeners refuse TLS until then)", fix)}
	}
	return []Result{pass(name, detail)}
}
