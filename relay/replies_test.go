package relay

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"outbound/metrics"
	"outbound/quota"
	"outbound/spf"
	"outbound/suppression"
)

// replyLiteral matches a reply written out by hand: "421 4.7.0 ..." or
// the format of one.
var replyLiteral = regexp.MustCompile(`^[2-5]\d\d[ -][2-5]\.\d{1,3}\.\d{1,3}\b|%d %d\.%d\.%d`)

// replyMakers lists where file builds a reply: calls of newReply or
// errMessageRefused (or conversions to reply), *smtp.SMTPError and reply
// literals, and reply lines written out as strings.
func replyMakers(t *testing.T, fset *token.FileSet, f *ast.File) []string {
	t.Helper()
	var found []string
	at := func(n ast.Node, what string) {
		found = append(found, fset.Position(n.Pos()).String()+": "+what)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && (replyBuilders[id.Name] || id.Name == "reply") {
				at(n, id.Name+"(...)")
			}
		case *ast.CompositeLit:
			switch typ := n.Type.(type) {
			case *ast.SelectorExpr:
				if typ.Sel.Name == "SMTPError" {
					at(n, "smtp.SMTPError{...}")
				}
			case *ast.Ident:
				if typ.Name == "reply" {
					at(n, "reply{...}")
				}
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, err := strconv.Unquote(n.Value); err == nil && replyLiteral.MatchString(s) {
					at(n, "reply line "+n.Value)
				}
			}
		}
		return true
	})
	return found
}

// Every reply the relay sends is built in replies.go, where its code, text
// and outcome are chosen together: no other file of the package builds an
// SMTPError, calls newReply or writes a reply line of its own; the others
// use the replies replies.go names.
func TestEveryReplyIsBuiltInReplies(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	inReplies := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		found := replyMakers(t, fset, f)
		if name == "replies.go" {
			inReplies = len(found)
			continue
		}
		for _, where := range found {
			t.Errorf("a reply built outside replies.go: %s", where)
		}
	}
	// The search must see the replies where they are, or it proves nothing.
	if inReplies < 20 {
		t.Fatalf("found %d replies built in replies.go; the search misses them", inReplies)
	}
}

// replyBuilders are the functions of replies.go that build replies for
// the named ones rather than being one.
var replyBuilders = map[string]bool{"newReply": true, "errMessageRefused": true}

// namedReplies returns the names of the replies replies.go defines: its
// functions returning a *reply, and its variables made by one.
func namedReplies(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "replies.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	makers := map[string]bool{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv != nil || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
			continue
		}
		if star, ok := fd.Type.Results.List[0].Type.(*ast.StarExpr); ok {
			if id, ok := star.X.(*ast.Ident); ok && id.Name == "reply" {
				makers[fd.Name.Name] = true
			}
		}
	}
	var names []string
	for name := range makers {
		if !replyBuilders[name] {
			names = append(names, name)
		}
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range gd.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok {
				continue
			}
			// Only a *reply itself: errShuttingDown keeps just the
			// SMTPError of one (lifecycle.go writes it).
			for i, v := range vs.Values {
				if call, ok := v.(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok && makers[id.Name] {
						names = append(names, vs.Names[i].Name)
					}
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

// Each reply counts as the outcome chosen with it, and the outcome agrees
// with the code: only a 250 is queued, a refusal (by policy, or for size)
// is permanent, a temporary error, a storage error or a quota is 4xx. The
// 452 4.3.1 of a full in-flight budget is no storage error (operators
// alert on those as a full disk), and a limit of 0 is a refusal by
// policy, not a quota to wait for.
func TestEachReplyCountsAsItsOutcome(t *testing.T) {
	overQuota := func(limit int, retry time.Duration) *quota.ExceededError {
		return &quota.ExceededError{User: alice, Window: "hourly", Limit: limit, Requested: 60, RetryIn: retry}
	}
	for _, tc := range []struct {
		name string
		r    *reply
		want outcome
	}{
		{"errTLSRequired", errTLSRequired, outcomeRefused},
		{"errAuthRequired", errAuthRequired, outcomeRefused},
		{"errAuthFailed", errAuthFailed, outcomeRefused},
		{"errAuthMechanism", errAuthMechanism, outcomeRefused},
		{"errTemporary", errTemporary, outcomeTemporary},
		{"errLimitsUnknown", errLimitsUnknown, outcomeTemporary},
		{"errAuthUnavailable", errAuthUnavailable, outcomeTemporary},
		{"errTooManyConnections", errTooManyConnections, outcomeTemporary},
		{"errStorage", errStorage, outcomeStorage},
		{"errBadLineEndings", errBadLineEndings, outcomeRefused},
		{"errNoFromHeader", errNoFromHeader, outcomeRefused},
		{"errHeaderStartsFolded", errHeaderStartsFolded, outcomeRefused},
		{"errBusy", errBusy, outcomeTemporary},
		{"errTooManyRecipients", errTooManyRecipients(5), outcomeTemporary},
		{"errHeaderSpaceBeforeColon", errHeaderSpaceBeforeColon("From"), outcomeRefused},
		{"errHeaderBadName", errHeaderBadName("Fr om"), outcomeRefused},
		{"errHeaderLineNoColon", errHeaderLineNoColon("no colon"), outcomeRefused},
		{"errHeaderUnparseable", errHeaderUnparseable("From", errors.New("mail: no angle-addr")), outcomeRefused},
		{"errLineTooLong", errLineTooLong(2000), outcomeRefused},
		{"errLongLineNotEncodable", errLongLineNotEncodable("the body"), outcomeRefused},
		{"errTooLarge", errTooLarge(1 << 20), outcomeTooLarge},
		{"errTooLargeAsQueued", errTooLargeAsQueued(1 << 20), outcomeTooLarge},
		{"errFromNotAllowed", errFromNotAllowed("ceo@bank.example", alice), outcomeRefused},
		{"errNotAllowed", errNotAllowed("Sender", "ceo@bank.example", alice), outcomeRefused},
		{"errBadAddress", errBadAddress("recipient", "x"), outcomeRefused},
		{"errOverQuota", errOverQuota(overQuota(50, 12*time.Minute)), outcomeQuota},
		{"errOverQuota", errOverQuota(overQuota(50, 0)), outcomeQuota},
		{"errOverQuota", errOverQuota(overQuota(0, 0)), outcomeRefused},
		{"errSPFTemporary", errSPFTemporary("try again"), outcomeTemporary},
		{"errSPFNotAligned", errSPFNotAligned(spf.Fail, "add include:_spf.example"), outcomeRefused},
		{"errSourceThrottled", errSourceThrottled(time.Minute), outcomeTemporary},
		{"errLoginThrottled", errLoginThrottled(time.Minute), outcomeTemporary},
		{"errTooManyErrors", errTooManyErrors(10, "no"), outcomeTemporary},
		{"queuedReply", queuedReply("ID"), outcomeQueued},
		{"errSuppressed", errSuppressed("gone@example.net", &suppression.Entry{Kind: suppression.Bounce, Reason: "550 5.1.1 no such user"}), outcomeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.r.outcome != tc.want {
				t.Errorf("%s counts as %q, want %q", tc.r, tc.r.outcome, tc.want)
			}
			code, class := tc.r.se.Code, tc.r.se.EnhancedCode[0]
			if code/100 != class {
				t.Errorf("%s: the enhanced code's class is not the code's", tc.r)
			}
			switch tc.r.outcome {
			case outcomeQueued:
				if code != 250 {
					t.Errorf("%s counts as queued", tc.r)
				}
			case outcomeRefused, outcomeTooLarge:
				if code < 500 {
					t.Errorf("%s is temporary, yet counts as %q", tc.r, tc.r.outcome)
				}
			case outcomeTemporary, outcomeStorage, outcomeQuota:
				if code/100 != 4 {
					t.Errorf("%s is not temporary, yet counts as %q", tc.r, tc.r.outcome)
				}
			default:
				t.Errorf("%s counts as %q, which is no outcome", tc.r, tc.r.outcome)
			}
		})
	}

	// Every reply replies.go defines is in the table above.
	listed := map[string]bool{}
	for _, n := range []string{
		"errTLSRequired", "errAuthRequired", "errAuthFailed", "errAuthMechanism", "errTemporary", "errLimitsUnknown", "errAuthUnavailable",
		"errTooManyConnections", "errStorage", "errBadLineEndings", "errNoFromHeader",
		"errHeaderStartsFolded", "errBusy", "errHeaderSpaceBeforeColon", "errHeaderBadName",
		"errHeaderLineNoColon", "errHeaderUnparseable", "errLineTooLong", "errLongLineNotEncodable",
		"errTooLarge", "errTooLargeAsQueued", "errFromNotAllowed", "errNotAllowed", "errBadAddress",
		"errOverQuota", "errSPFTemporary", "errSPFNotAligned", "errSourceThrottled",
		"errLoginThrottled", "errTooManyErrors", "queuedReply", "errSuppressed",
		"errTooManyRecipients",
	} {
		listed[n] = true
	}
	names := namedReplies(t)
	if len(names) < 20 {
		t.Fatalf("found only %v in replies.go", names)
	}
	for _, n := range names {
		if !listed[n] {
			t.Errorf("reply %s is not checked here: add it to the table", n)
		}
	}
}

// The session counts each DATA under the outcome of the reply it sent:
// queued, refused by policy, too large, and over the quota's limit.
func TestSubmissionsCountedByTheirReply(t *testing.T) {
	h := startRelay(t, nil)
	count := func(o outcome) float64 { return promtest.ToFloat64(metrics.Submissions.WithLabelValues(string(o))) }
	before := map[outcome]float64{}
	for _, o := range []outcome{outcomeQueued, outcomeRefused, outcomeTooLarge} {
		before[o] = count(o)
	}
	c := h.login(t, true)
	if err := send(c, alice, []string{"bob@example.net"}, simpleMessage); err != nil {
		t.Fatal(err)
	}
	wantCode(t, send(c, alice, []string{"bob@example.net"}, "From: alice@example.com\r\nSender: ceo@bank.example\r\n\r\nx\r\n"),
		550, smtp.EnhancedCode{5, 7, 1}, "Sender <ceo@bank.example> is not allowed")
	big := simpleMessage + strings.Repeat("\r\n"+strings.Repeat("y", 998), 70)
	wantCode(t, send(c, alice, []string{"bob@example.net"}, big), 552, smtp.EnhancedCode{5, 3, 4}, "too large")
	for o, want := range map[outcome]float64{outcomeQueued: 1, outcomeRefused: 1, outcomeTooLarge: 1} {
		if d := count(o) - before[o]; d != want {
			t.Errorf("%q submissions grew by %v, want %v", o, d, want)
		}
	}
}

// Limits that cannot be judged (a cluster node without its shared counts,
// quota.ErrUnavailable, wrapped) get the 451 that says so; other quota
// errors the generic temporary one.
func TestQuotaReplyWhenLimitsCannotBeJudged(t *testing.T) {
	unavailable := fmt.Errorf("%w: the shared counts were not reached since start", quota.ErrUnavailable)
	if r := quotaReply(unavailable); r != errLimitsUnknown {
		t.Errorf("quotaReply(%v) = %s, want %s", unavailable, r, errLimitsUnknown)
	}
	if se := errLimitsUnknown.se; se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) ||
		se.Message != "Sending limits cannot be checked right now; try again later" {
		t.Errorf("errLimitsUnknown is %d %v %q", se.Code, se.EnhancedCode, se.Message)
	}
	if r := quotaReply(errors.New("disk on fire")); r != errTemporary {
		t.Errorf("quotaReply(other error) = %s, want %s", r, errTemporary)
	}
}
