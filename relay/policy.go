package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"outbound/metrics"
	"outbound/quota"
	"outbound/spf"
)

// quotaReply turns a quota refusal into the reply the client sees
// (errOverQuota), counting it; limits that cannot be judged (a cluster's
// shared counts unreachable, quota.ErrUnavailable) are errLimitsUnknown;
// any other error of the quota store is a temporary local problem.
func quotaReply(err error) *reply {
	var ex *quota.ExceededError
	if !errors.As(err, &ex) {
		if errors.Is(err, quota.ErrUnavailable) {
			return errLimitsUnknown
		}
		return errTemporary
	}
	metrics.QuotaRefusals.WithLabelValues(ex.Window).Inc()
	r := errOverQuota(ex)
	r.retryIn = ex.RetryIn
	return r
}

func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return strings.ToLower(addr[at+1:])
	}
	return ""
}

// checkSPF evaluates the SPF alignment of addr's domain with the user's
// upstream. Under "enforce" a fail refuses the message with 550 5.7.23 and
// a temperror with 451 4.7.24, both naming the fix; under "warn" a non-pass
// is remembered for an X-Outbound-SPF header and logged.
func (s *session) checkSPF(addr string) *reply {
	s.spfResult = nil
	policy := s.policy.SPFPolicy
	if s.b.opts.SPF == nil || policy == "" || policy == spf.PolicyOff || domainOf(addr) == "" {
		return nil
	}
	if s.policy.SPF.Include == "" && len(s.policy.SPF.IPs) == 0 {
		return nil // the route has no SPF identity to check against
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.b.opts.SPFTimeout)
	defer cancel()
	res := s.b.opts.SPF.Check(ctx, domainOf(addr), s.policy.SPF)
	if res.Verdict == spf.Pass {
		return nil
	}
	s.b.log.Info("spf not aligned", "user", s.user.Name, "domain", res.Domain, "upstream", s.policy.SPF.Name,
		"verdict", res.Verdict, "policy", policy, "fix", res.Fix)
	if policy == spf.PolicyEnforce {
		if res.Verdict == spf.TempError {
			return errSPFTemporary(res.Fix)
		}
		return errSPFNotAligned(res.Verdict, res.Fix)
	}
	s.spfResult = &res
	return nil
}

// spfHeader records a non-pass SPF verdict under "warn" in the message,
// where the operator (and the recipient's admin) can see it.
func spfHeader(r *spf.Result) string {
	return fmt.Sprintf("X-Outbound-SPF: %s domain=%s; %s\r\n", r.Verdict, r.Domain, sanitizeHeaderValue(r.Fix))
}
