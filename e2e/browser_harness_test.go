package e2e

// The browser vocabulary: Debian's chromium, headless, driven through the
// DevTools protocol (chromedp), against the relay's web interface.
//
//   - startBrowser starts one chromium for a test (reuse it: a tab is
//     cheap, a browser is not); without chromium it fails saying to run
//     scripts/install-test-deps.sh, unless OUTBOUND_SKIP_BROWSER=1.
//   - b.newTab(base) opens a tab with an empty cookie jar of its own.
//   - Elements are found the way a screen reader finds them: by role and
//     accessible name, as chromium computes them (Accessibility.queryAXTree),
//     never by CSS class or id. tab.fill("Login", ...) therefore proves that
//     a text box is named "Login" (a <label for> that works), tab.press("Sign
//     in") that a button says "Sign in". A name that matches nothing fails
//     after browserTimeout with the page's text; two visible elements with
//     one name fail too, because a person could not tell them apart either
//     (tab.within scopes the lookups to the section under a heading).
//   - Every tab records its console; tab.checkConsole fails the test on a
//     Content-Security-Policy violation or an uncaught script error.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which scripts/install-test-deps.sh
// installs. Nothing downloads a browser.
const chromiumPath = "/usr/bin/chromium"

// skipBrowserEnv, set to 1, skips the browser tests on a developer machine
// without chromium. CI never sets it: there, a missing chromium fails.
const skipBrowserEnv = "OUTBOUND_SKIP_BROWSER"

// browserTimeout bounds every single browser step (a lookup and the action
// on what it found, a click and the page it loads), so that a missing
// element fails the test with a message instead of hanging the suite.
const browserTimeout = 20 * time.Second

// browser is one headless chromium, shared by the tabs of one test and
// ended by the test's cleanup.
type browser struct {
	t   *testing.T
	ctx context.Context // the browser's first tab; its children are new tabs
}

// startBrowser starts chromium, or fails the test saying how to install it.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if os.Getenv(skipBrowserEnv) == "1" {
		t.Skipf("%s=1: browser tests skipped", skipBrowserEnv)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Debian's chromium at %s (%v): run scripts/install-test-deps.sh, "+
			"or set %s=1 to skip them", chromiumPath, err, skipBrowserEnv)
	}
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Scroll bars would take width from the page at 390 px.
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.CombinedOutput(out),
	)
	ctx, cancel := chromedp.NewContext(actx)
	// Cleanups run last-registered first: the browser exits before
	// t.TempDir removes its profile.
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		out.Close()
		if t.Failed() {
			data, _ := os.ReadFile(out.Name())
			t.Logf("chromium output:\n%s", data)
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return &browser{t: t, ctx: ctx}
}

// tab is one browser tab with cookies of its own (a fresh browser
// context), looking at the site at base ("http://127.0.0.1:port").
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string
	scope string // see within

	// state is shared by the copies within makes.
	state *tabState
}

// tabState is what a tab learns while it runs.
type tabState struct {
	mu      sync.Mutex
	console []string // every console message so far, "type: text"
	// why the latest element lookup found nothing usable, to explain a
	// step that timed out
	lookup string
}

// newTab opens a tab on base with an empty cookie jar.
func (b *browser) newTab(base string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	p := &tab{t: b.t, ctx: ctx, base: strings.TrimSuffix(base, "/"), state: new(tabState)}
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("opening a tab: %v", err)
	}
	// Listen calls its func in the order of the browser's messages, before
	// the answer to a later command: once any step returns, every message
	// the page wrote before it is recorded.
	err := chromedp.Listen(ctx, func(ev any) {
		var m string
		switch ev := ev.(type) {
		case *log.EventEntryAdded: // the browser's own, CSP violations among them
			m = string(ev.Entry.Level) + ": " + ev.Entry.Text
		case *runtime.EventExceptionThrown:
			m = "exception: " + ev.ExceptionDetails.Text
			if e := ev.ExceptionDetails.Exception; e != nil {
				m += " " + e.Description
			}
		case *runtime.EventConsoleAPICalled:
			m = string(ev.Type) + ": (console API)"
		default:
			return
		}
		p.state.mu.Lock()
		p.state.console = append(p.state.console, m)
		p.state.mu.Unlock()
	})
	if err != nil {
		b.t.Fatalf("listening to the tab: %v", err)
	}
	return p
}

// run runs one step within browserTimeout and returns its value; it fails
// the test with what, the error, and the page's address and text.
func run[T any](p *tab, what string, step chromedp.Action[T]) T {
	p.t.Helper()
	p.setLookup("")
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, step)
	if err != nil {
		p.fatalf("%s: %v", what, err)
	}
	return v
}

// fatalf fails the test, adding why the last lookup failed and the page's
// address and text.
func (p *tab) fatalf(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if why := p.getLookup(); why != "" {
		msg += " (" + why + ")"
	}
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	p.t.Fatalf("%s\n--- page %s:\n%s\n---", msg, loc, text)
}

func (p *tab) setLookup(why string) {
	p.state.mu.Lock()
	p.state.lookup = why
	p.state.mu.Unlock()
}

func (p *tab) getLookup() string {
	p.state.mu.Lock()
	defer p.state.mu.Unlock()
	return p.state.lookup
}

// open loads path (relative to base) and returns the HTTP status.
func (p *tab) open(path string) int {
	p.t.Helper()
	return int(run(p, "opening "+path, chromedp.NavigateResponse(p.base+path)).Status)
}

// path is the address of the page shown, without base.
func (p *tab) path() string {
	p.t.Helper()
	return strings.TrimPrefix(run(p, "reading the location", chromedp.Location()), p.base)
}

// within returns the same tab with lookups limited to the section that
// heading titles: the parent element of the one heading with that name.
// Use it where a name appears in two sections of one page.
func (p *tab) within(heading string) *tab {
	scoped := *p
	scoped.scope = heading
	return &scoped
}

// byRole finds the one element with this ARIA role and accessible name
// that is not hidden (within p.scope, if set). Chromium computes both, as
// for a screen reader: a text box is named by its <label for>, a button by
// its text. Roles: fieldRole (any text, password, number or search
// field), "combobox" (a <select>), "radio", "checkbox", "button", "link",
// "heading", or any other ARIA role.
func (p *tab) byRole(role, name string) chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, root *chromedp.Node) ([]cdp.NodeID, error) {
		ids, where, err := p.findAll(ctx, t, root, role, name)
		if err != nil || where == "" {
			return nil, err
		}
		// chromedp retries an empty lookup until the step's timeout;
		// fatalf then says why it was empty.
		switch len(ids) {
		case 0:
			p.setLookup(fmt.Sprintf("no %s named %q%s", role, name, where))
		case 1:
			p.setLookup("")
			return ids, nil
		default:
			p.setLookup(fmt.Sprintf("%d elements with role %s named %q%s: a name must say which one",
				len(ids), role, name, where))
		}
		return nil, nil
	})
}

// findAll returns every shown element with this role and name (within
// p.scope), and where it looked ("" while the section is missing).
func (p *tab) findAll(ctx context.Context, t *chromedp.Target, root *chromedp.Node, role, name string) ([]cdp.NodeID, string, error) {
	if p.scope == "" {
		ids, err := axFind(ctx, t, root.NodeID, role, name)
		return ids, " on the page", err
	}
	section, err := p.section(ctx, t, root)
	if err != nil || section == 0 {
		return nil, "", err
	}
	ids, err := axFind(ctx, t, section, role, name)
	return ids, " in the section " + p.scope, err
}

// section returns the parent element of the one heading named p.scope, or
// 0 while there is none.
func (p *tab) section(ctx context.Context, t *chromedp.Target, root *chromedp.Node) (cdp.NodeID, error) {
	headings, err := axFind(ctx, t, root.NodeID, "heading", p.scope)
	if err != nil {
		return 0, err
	}
	if len(headings) != 1 {
		p.setLookup(fmt.Sprintf("%d headings named %q", len(headings), p.scope))
		return 0, nil
	}
	parent, err := callOnNode(ctx, t, headings[0], `function() { return this.parentElement; }`)
	if err != nil {
		return 0, err
	}
	node, err := cdp.Call(ctx, t, dom.RequestNode, dom.RequestNodeParams{ObjectID: parent.ObjectID})
	if err != nil {
		return 0, err
	}
	return node.NodeID, nil
}

// bySection selects the section p.scope names (see within).
func (p *tab) bySection() chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, root *chromedp.Node) ([]cdp.NodeID, error) {
		id, err := p.section(ctx, t, root)
		if err != nil || id == 0 {
			return nil, err
		}
		return []cdp.NodeID{id}, nil
	})
}

// fieldRole is the role byRole takes for any field one types into: a
// text box, a search box, or a number's spin button.
const fieldRole = "field"

// axFind returns the DOM nodes under root with this role (or fieldRole)
// and accessible name that are not ignored (hidden) for accessibility.
func axFind(ctx context.Context, t *chromedp.Target, root cdp.NodeID, role, name string) ([]cdp.NodeID, error) {
	params := accessibility.QueryAXTreeParams{NodeID: root, Role: role, AccessibleName: name}
	if role == fieldRole {
		params.Role = ""
	}
	res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, params)
	if err != nil {
		return nil, err
	}
	var backend []cdp.BackendNodeID
	for _, n := range res.Nodes {
		if n.Ignored || n.BackendDOMNodeID == 0 {
			continue
		}
		if role == fieldRole {
			var r string
			if n.Role == nil || json.Unmarshal(n.Role.Value, &r) != nil ||
				(r != "textbox" && r != "searchbox" && r != "spinbutton") {
				continue
			}
		}
		backend = append(backend, n.BackendDOMNodeID)
	}
	if len(backend) == 0 {
		return nil, nil
	}
	pushed, err := cdp.Call(ctx, t, dom.PushNodesByBackendIDsToFrontend, dom.PushNodesByBackendIDsToFrontendParams{BackendNodeIDs: backend})
	if err != nil {
		return nil, err
	}
	return pushed.NodeIDs, nil
}

// callOnNode calls the JavaScript function fn with this = the element and
// the string arguments, and returns its result; a thrown exception is an
// error.
func callOnNode(ctx context.Context, t *chromedp.Target, node cdp.NodeID, fn string, args ...string) (*runtime.RemoteObject, error) {
	obj, err := cdp.Call(ctx, t, dom.ResolveNode, dom.ResolveNodeParams{NodeID: node})
	if err != nil {
		return nil, err
	}
	params := runtime.CallFunctionOnParams{FunctionDeclaration: fn, ObjectID: obj.Object.ObjectID}
	for _, a := range args {
		v, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		params.Arguments = append(params.Arguments, &runtime.CallArgument{Value: jsonv2.Value(v)})
	}
	res, err := cdp.Call(ctx, t, runtime.CallFunctionOn, params)
	if err != nil {
		return nil, err
	}
	if d := res.ExceptionDetails; d != nil {
		if d.Exception != nil && d.Exception.Description != "" {
			return nil, errors.New(d.Exception.Description)
		}
		return nil, errors.New(d.Text)
	}
	return res.Result, nil
}

// onElement is a step that finds the element by role and name (waiting until
// it is visible) and calls the JavaScript function fn on it.
func (p *tab) onElement(role, name, fn string, args ...string) chromedp.Action[chromedp.Void] {
	return chromedp.QueryAfter("", func(ctx context.Context, t *chromedp.Target, nodes []*chromedp.Node) (chromedp.Void, error) {
		_, err := callOnNode(ctx, t, nodes[0].NodeID, fn, args...)
		return chromedp.Void{}, err
	}, p.byRole(role, name), chromedp.NodeVisible)
}

// fill types value into the field named label, replacing its content.
func (p *tab) fill(label, value string) {
	p.t.Helper()
	run(p, "filling "+label, chromedp.Steps(
		p.onElement(fieldRole, label, `function() { this.value = ""; }`),
		chromedp.SendKeys("", value, p.byRole(fieldRole, label)),
	))
}

// choose picks the option with this visible text in the select named label;
// the page sees the input and change events a person's choice makes.
func (p *tab) choose(label, option string) {
	p.t.Helper()
	run(p, "choosing "+option+" in "+label, p.onElement("combobox", label, chooseJS, option))
}

// chooseJS selects the option whose text is the argument, or throws naming
// the options there are.
const chooseJS = `function(text) {
	const norm = s => s.replace(/\s+/g, " ").trim();
	const opt = Array.from(this.options).find(o => norm(o.text) === text);
	if (!opt) {
		throw new Error("no option " + JSON.stringify(text) + "; the options are " +
			Array.from(this.options).map(o => JSON.stringify(norm(o.text))).join(", "));
	}
	this.value = opt.value;
	this.dispatchEvent(new Event("input", {bubbles: true}));
	this.dispatchEvent(new Event("change", {bubbles: true}));
}`

// check clicks the radio button or checkbox (role "radio" or "checkbox")
// named label, unless it is checked already.
func (p *tab) check(role, label string) {
	p.t.Helper()
	if !run(p, "reading "+label, chromedp.JavascriptAttribute[bool]("", "checked", p.byRole(role, label))) {
		run(p, "checking "+label, chromedp.Click("", p.byRole(role, label)))
	}
}

// press clicks the button with this name and waits for the page it loads
// (a form submission, as without scripts); it returns the HTTP status.
func (p *tab) press(name string) int {
	p.t.Helper()
	return p.navigateBy("pressing "+name, chromedp.Click("", p.byRole("button", name)))
}

// follow clicks the link with this name and waits for the page it loads;
// it returns the HTTP status.
func (p *tab) follow(name string) int {
	p.t.Helper()
	return p.navigateBy("following "+name, chromedp.Click("", p.byRole("link", name)))
}

// click clicks the button with this name and does not wait for a new page:
// for buttons that update the page in place.
func (p *tab) click(name string) {
	p.t.Helper()
	run(p, "clicking "+name, chromedp.Click("", p.byRole("button", name)))
}

// navigateBy runs the step, waits for the page it loads and returns the
// HTTP status.
func (p *tab) navigateBy(what string, step chromedp.Action[chromedp.Void]) int {
	p.t.Helper()
	return int(run(p, what, func(ctx context.Context, t *chromedp.Target) (int64, error) {
		resp, err := chromedp.RunResponse(ctx, step)
		if err != nil || resp == nil {
			return 0, err
		}
		return resp.Status, nil
	}))
}

// count is how many shown elements have this role and name now (within
// p.scope), without waiting: for what must not be there.
func (p *tab) count(role, name string) int {
	p.t.Helper()
	return run(p, "counting "+role+" "+name, func(ctx context.Context, t *chromedp.Target) (int, error) {
		var n int
		_, err := chromedp.Query("", chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, root *chromedp.Node) ([]cdp.NodeID, error) {
			ids, _, err := p.findAll(ctx, t, root, role, name)
			n = len(ids)
			return nil, err
		}), chromedp.AtLeast(0))(ctx, t)
		return n, err
	})
}

// text is the visible text of the page, or of the section (within).
func (p *tab) text() string {
	p.t.Helper()
	if p.scope != "" {
		return run(p, "reading the section "+p.scope, chromedp.Text("", p.bySection()))
	}
	return run(p, "reading the page", chromedp.Evaluate[string](`document.body.innerText`))
}

// waitText waits until the page (or section) shows each of the strings,
// any run of white space in either matching any other (so that "Messages
// accepted 2" finds a label and its value in separate boxes).
func (p *tab) waitText(want ...string) {
	p.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for {
		text := strings.Join(strings.Fields(p.text()), " ")
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, strings.Join(strings.Fields(w), " ")) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			p.fatalf("the page does not show %q after %s", missing, browserTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkConsole fails the test if the page reported a Content-Security-Policy
// violation or an uncaught script error since the tab opened.
func (p *tab) checkConsole() {
	p.t.Helper()
	// A round trip: the messages written before it are recorded after it.
	run(p, "syncing the console", chromedp.Evaluate[chromedp.Void](`0`))
	p.state.mu.Lock()
	defer p.state.mu.Unlock()
	for _, m := range p.state.console {
		if strings.Contains(m, "Content Security Policy") || strings.HasPrefix(m, "exception:") {
			p.t.Errorf("browser console: %s", m)
		}
	}
}

// html is the page's markup as the browser holds it now.
func (p *tab) html() string {
	p.t.Helper()
	return run(p, "reading the markup", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
}

// resize sets the window's size; phone also emulates a phone (the page's
// <meta name="viewport"> then decides its layout width, as on a phone).
func (p *tab) resize(width, height int, phone bool) {
	p.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if phone {
		opts = append(opts, chromedp.EmulateMobile)
	}
	run(p, "resizing", chromedp.EmulateViewport(int64(width), int64(height), opts...))
}

// checkFits fails the test when the page shown scrolls sideways: it is
// laid out wider than width (on an emulated phone the layout then widens
// past the screen), naming the innermost elements that reach past it.
// Tables may scroll inside their own box.
func (p *tab) checkFits(width int) {
	p.t.Helper()
	got := run(p, "measuring the page", chromedp.Evaluate[string](fmt.Sprintf(`(() => {
		const want = %d, w = window.innerWidth, sw = document.documentElement.scrollWidth;
		if (w === want && sw <= w) return "";
		// The innermost elements reaching past the screen: the culprits.
		const past = e => e.getBoundingClientRect().right > want + 1;
		const wide = Array.from(document.querySelectorAll("body *"))
			.filter(e => past(e) && !Array.from(e.children).some(past))
			.slice(0, 5)
			.map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + String(e.className).split(" ").join(".") : ""));
		const meta = document.querySelector('meta[name="viewport"]') ? "" : " (no <meta name=viewport>)";
		return "laid out " + Math.max(w, sw) + " px wide for " + want + " px" + meta + "; wider than that: " + wide.join(", ");
	})()`, width)))
	if got != "" {
		p.t.Errorf("%s at %d px scrolls sideways: %s", p.path(), width, got)
	}
}

// screenshot writes a PNG of the whole page (beyond the window's height).
func (p *tab) screenshot(file string) {
	p.t.Helper()
	data := run(p, "taking a screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		p.t.Fatal(err)
	}
}
