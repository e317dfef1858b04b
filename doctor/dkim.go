package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"outbound/admin"
	"outbound/dkim"
)

// checkDKIM compares each DKIM key's published TXT record with the key
// the relay signs with (a record that names another key makes every
// signature fail), then reports DMARC per sender domain: a _dmarc record,
// and alignment by our DKIM signature or by SPF through the route.
// spfPass holds the sender domains and whether their SPF authorizes the
// route (checkSPF). A relay without DKIM signing (the API answers 501)
// reports no DKIM results, but DMARC still.
func checkDKIM(ctx context.Context, o *Options, spfPass map[string]bool) []Result {
	if o.API == nil {
		return nil
	}
	var out []Result
	keys, err := o.API.DKIMKeys("")
	var apiErr *admin.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotImplemented:
		keys = nil
	case err != nil:
		return []Result{fail("DKIM keys", err.Error(), "start `outbound serve` and check [admin] listen")}
	}
	// signing holds the domains with an active key whose record matches;
	// hasKey those with an active key at all, published or not.
	signing := map[string]string{}
	hasKey := map[string]bool{}
	now := o.Now()
	for _, k := range keys {
		if !k.Active && !now.Before(k.PublishUntil) {
			continue // retired and past its date: may leave DNS
		}
		hasKey[k.Domain] = hasKey[k.Domain] || k.Active
		r := checkDKIMRecord(ctx, o, k)
		if r.OK && k.Active {
			signing[k.Domain] = k.Selector
		}
		out = append(out, r)
	}
	domains := make([]string, 0, len(spfPass))
	for d := range spfPass {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		out = append(out, checkDMARC(ctx, o, d, signing[d], hasKey[d], spfPass[d]))
	}
	return out
}

// checkDKIMRecord looks up k's TXT record and compares its public key.
func checkDKIMRecord(ctx context.Context, o *Options, k admin.DKIMKey) Result {
	name := fmt.Sprintf("DKIM key %s (%s) published", k.RecordName, k.Algorithm)
	publish := fmt.Sprintf("publish TXT %s: %s", k.RecordName, k.Record)
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	txts, err := o.LookupTXT(ctx, k.RecordName)
	if err != nil || len(txts) == 0 {
		detail := "no TXT record"
		if err != nil {
			detail = err.Error()
		}
		return fail(name, detail, publish)
	}
	want := tag(k.Record, "p")
	for _, t := range txts {
		if tag(t, "p") == want {
			return pass(name, "the published key is the relay's")
		}
	}
	return fail(name, fmt.Sprintf("the published record %q is not the relay's key: receivers fail its signatures", strings.Join(txts, " | ")),
		"replace it: "+publish)
}

// checkDMARC reports whether mail from domain passes DMARC: it needs a
// _dmarc record and alignment by our DKIM signature (selector != "") or
// by SPF through the route (spfOK). hasKey says the domain has an active
// DKIM key, so that the fix for an unaligned domain is to publish its
// records, not to make keys again (keygen refuses a selector in use, or
// makes a second set that signs beside the first).
func checkDMARC(ctx context.Context, o *Options, domain, selector string, hasKey, spfOK bool) Result {
	name := "DMARC alignment of " + domain
	var by []string
	if selector != "" {
		by = append(by, "DKIM (selector "+selector+")")
	}
	if spfOK {
		by = append(by, "SPF through its route")
	}
	suggestion := dkim.DMARCSuggestion(domain)
	if len(by) == 0 {
		fix := fmt.Sprintf("run `outbound dkim keygen %s` and publish the record it prints (or fix its SPF as above)", domain)
		if hasKey {
			fix = fmt.Sprintf("publish the DKIM records (`outbound dkim records %s`; the DKIM key checks above name each), or fix its SPF as above", domain)
		}
		return fail(name, "neither our DKIM signature nor SPF aligns it: receivers' DMARC checks fail", fix)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	txts, err := o.LookupTXT(ctx, suggestion.Name)
	for _, t := range txts {
		if strings.HasPrefix(strings.TrimSpace(t), "v=DMARC1") {
			return pass(name, "aligned by "+strings.Join(by, " and ")+"; published: "+t)
		}
	}
	detail := "aligned by " + strings.Join(by, " and ") + ", but no DMARC record"
	if err != nil {
		detail += ": " + err.Error()
	}
	return fail(name, detail, fmt.Sprintf("publish TXT %s: %s", suggestion.Name, suggestion.Value))
}

// tag returns the value of tag t in a DKIM record ("v=DKIM1; k=ed25519;
// p=..."), whitespace removed, as RFC 6376 §3.2 compares them.
func tag(record, t string) string {
	for _, part := range strings.Split(record, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == t {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}
