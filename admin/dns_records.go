package admin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"

	"outbound/dkim"
	"outbound/route"
)

// DNSRecords is the answer to GET /api/dns-records/{domain}: every record
// the domain should publish for this relay, ready to paste into a zone.
type DNSRecords struct {
	Domain string `json:"domain"`
	// Hostname is the relay's host name, the target of the SRV and CNAME
	// records.
	Hostname string `json:"hostname"`
	// Users are the users that may send from the domain.
	Users   []string    `json:"users"`
	Records []DNSRecord `json:"records"`
	// Notes say what the records cannot: a route with no SPF identity,
	// that the SPF record is to be merged into an existing one, a domain
	// without a DKIM key.
	Notes []string `json:"notes,omitempty"`
}

// DNSRecord is one resource record: Name is the owner name (fully
// qualified, with the final dot), Value the record data in zone-file
// form, Purpose what it is for.
type DNSRecord struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Value   string `json:"value"`
	Purpose string `json:"purpose"`
}

// dnsRecords lists the records of a domain some user sends from. The
// submission SRV records name the ports the listeners are configured on,
// as autoconfig does (465 and 587 unless set otherwise; srvPortsNote);
// Outlook's _autodiscover SRV points at the relay's host name on 443, so
// Outlook reaches the autodiscover answer with the relay's own
// certificate.
func (a *api) dnsRecords(w http.ResponseWriter, r *http.Request) error {
	domain := strings.ToLower(strings.TrimSuffix(r.PathValue("domain"), "."))
	if domain == "" || strings.ContainsAny(domain, " /@") {
		return badRequest("%q is not a domain name", r.PathValue("domain"))
	}
	users, err := a.Users.List()
	if err != nil {
		return err
	}
	rep := DNSRecords{Domain: domain, Hostname: a.LocalName, Users: []string{}, Records: []DNSRecord{}}
	var includes, ips []string
	seen := map[string]bool{}
	add := func(list *[]string, term string) {
		if !seen[term] {
			seen[term] = true
			*list = append(*list, term)
		}
	}
	for _, u := range users {
		sends := false
		for _, d := range senderDomains(u) {
			sends = sends || d == domain
		}
		if !sends {
			continue
		}
		rep.Users = append(rep.Users, u.Name)
		id := a.Routes.Policy(u).SPF
		if id.Include == "" && len(id.IPs) == 0 {
			name := u.Route
			if name == "" {
				name = route.DefaultName
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("route %s (user %s) has no SPF identity: set its SPF include or IPs so SPF can authorize it", name, u.Name))
			continue
		}
		if id.Include != "" {
			add(&includes, "include:"+id.Include)
		}
		for _, ip := range id.IPs {
			add(&ips, spfIPTerm(ip))
		}
	}
	if len(rep.Users) == 0 {
		return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("no user may send from %s: add it to a user's allowed senders first", domain)}
	}
	sort.Strings(includes)
	sort.Strings(ips)
	fqdn := func(name string) string { return name + "." }
	host := fqdn(strings.TrimSuffix(a.LocalName, "."))
	if terms := append(includes, ips...); len(terms) > 0 {
		rep.Records = append(rep.Records, DNSRecord{Name: fqdn(domain), Type: "TXT",
			Value:   txtZoneValue("v=spf1 " + strings.Join(terms, " ") + " ~all"),
			Purpose: "SPF: authorizes the upstreams this domain's users send through"})
		rep.Notes = append(rep.Notes, "a domain has one SPF record: if it publishes one already, add "+strings.Join(terms, " ")+" to it instead")
	}
	implicit, starttls := portOr(a.ImplicitTLSPort, 465), portOr(a.STARTTLSPort, 587)
	rep.Records = append(rep.Records,
		DNSRecord{Name: fqdn("_submissions._tcp." + domain), Type: "SRV", Value: fmt.Sprintf("0 1 %d %s", implicit, host),
			Purpose: "RFC 8314: mail submission over implicit TLS"},
		DNSRecord{Name: fqdn("_submission._tcp." + domain), Type: "SRV", Value: fmt.Sprintf("0 1 %d %s", starttls, host),
			Purpose: "RFC 6186: mail submission with STARTTLS"},
		DNSRecord{Name: fqdn("autoconfig." + domain), Type: "CNAME", Value: host,
			Purpose: "Thunderbird's autoconfig (the certificate must name autoconfig." + domain + " for HTTPS)"},
		DNSRecord{Name: fqdn("autodiscover." + domain), Type: "CNAME", Value: host,
			Purpose: "Outlook's autodiscover (the certificate must name autodiscover." + domain + ")"},
		DNSRecord{Name: fqdn("_autodiscover._tcp." + domain), Type: "SRV", Value: "0 1 443 " + host,
			Purpose: "Outlook's autodiscover at the relay's own name, with its own certificate"},
	)
	if note := srvPortsNote(implicit, starttls); note != "" {
		rep.Notes = append(rep.Notes, note)
	}
	if err := a.addDKIMRecords(&rep); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// portOr is port, or def when it is 0 (not configured).
func portOr(port, def int) int {
	if port == 0 {
		return def
	}
	return port
}

// srvPortsNote says, when a submission listener is configured on a port
// other than the standard one, that the SRV records (and autoconfig) name
// that port, and what to publish instead when a firewall forwards the
// standard ports to it: clients then reach 465 and 587.
func srvPortsNote(implicit, starttls int) string {
	if implicit == 465 && starttls == 587 {
		return ""
	}
	return fmt.Sprintf("the submission SRV records name the ports the relay listens on (%d for implicit TLS, %d for STARTTLS), as autoconfig does; "+
		"if a firewall forwards 465 and 587 to them instead, publish 465 and 587 in the SRV records (autoconfig still names the listeners' ports)", implicit, starttls)
}

// addDKIMRecords adds the domain's DKIM keys' TXT records and a DMARC
// suggestion (package dkim), or a note that the domain has no key yet.
// Without a DKIM store the server does not sign, and nothing is said.
func (a *api) addDKIMRecords(rep *DNSRecords) error {
	if a.DKIM == nil {
		return nil
	}
	records, err := a.DKIM.Records(rep.Domain)
	if errors.Is(err, dkim.ErrNotFound) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s has no DKIM key, so its mail is not signed: run outbound dkim keygen %s", rep.Domain, rep.Domain))
		return nil
	}
	if err != nil {
		return err
	}
	for _, r := range records {
		value := r.Value
		if r.Type == "TXT" {
			value = txtZoneValue(value)
		}
		rep.Records = append(rep.Records, DNSRecord{Name: strings.TrimSuffix(r.Name, ".") + ".", Type: r.Type, Value: value, Purpose: r.Note})
	}
	return nil
}

// txtZoneValue is a TXT value in zone-file form: quoted strings of at
// most 255 octets each, as DNS requires of a long value (an RSA key);
// resolvers join them back into one.
func txtZoneValue(v string) string {
	var parts []string
	for {
		n := min(len(v), 255)
		parts = append(parts, `"`+v[:n]+`"`)
		if v = v[n:]; v == "" {
			return strings.Join(parts, " ")
		}
	}
}

// spfIPTerm is "ip4:192.0.2.1" or "ip6:2001:db8::1".
func spfIPTerm(ip net.IP) string {
	if ip.To4() != nil {
		return "ip4:" + ip.String()
	}
	return "ip6:" + ip.String()
}
