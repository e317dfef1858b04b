package sendapi

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	texttemplate "text/template"
	"text/template/parse"
)

// A template is the user's own code running on the relay, and Go's
// template packages have no bound on the work an execution does: a
// {{range}} over a large number, nested ranges over the request's data
// that print nothing, template calls that fan out, or a string doubled
// in a variable keep a CPU (and memory) busy with no output to stop at.
// A render that is abandoned at its deadline must also really end, not
// run on in its goroutine. So rendering is bounded three ways:
//
//   - statically, when a template is stored and each time one is
//     rendered (stored templates may predate a rule): no {{range}} over a
//     constant or a function's scalar result, ranges nest at most
//     maxRangeNesting deep (counted through {{template}} calls), no
//     template calls itself, and its calls do not expand past the step
//     budget;
//   - the data: lists and maps of at most maxDataEntries entries, at most
//     maxDataBytes in all, at most maxDataDepth levels;
//   - at run time: every range iteration and every template body charges
//     its static size to a step budget (maxRenderSteps), the functions
//     that make strings (print, printf, println, html, js, urlquery) are
//     bounded in what each makes and in all, and every one of these
//     checks, as does every write, whether the render was abandoned. The
//     charging is a no-output variable declaration the render inserts at
//     the top of each range body ({{$_outbound_step := _outbound_step N}}),
//     which html/template leaves unescaped.
const (
	maxRangeNesting = 2
	maxRenderSteps  = 250_000
	maxFuncBytes    = 8 * maxRenderedBytes
	maxDataEntries  = 1000
	maxDataBytes    = 1 << 20
	maxDataDepth    = 32
)

var (
	errTooMuchWork  = errors.New("too much work")
	errRenderFunc   = errors.New("function result too large")
	errRenderHalted = errors.New("render abandoned at its deadline")
)

// rendersHalted counts renders abandoned at their deadline that then
// stopped before finishing (the tests read it).
var rendersHalted atomic.Int64

// renderBudget is what one render (subject, text and HTML) may still do.
// Only the rendering goroutine charges it (and sets stopped, when it
// sees halt); halt is set by the one waiting.
type renderBudget struct {
	steps   int64
	bytes   int64
	halt    atomic.Bool
	stopped bool
}

// halted reports whether the render was abandoned, noting that it stopped.
func (b *renderBudget) halted() bool {
	if b.halt.Load() {
		b.stopped = true
	}
	return b.stopped
}

func newRenderBudget() *renderBudget {
	return &renderBudget{steps: maxRenderSteps, bytes: maxFuncBytes}
}

// step charges n steps: the static size of a range body or a template.
func (b *renderBudget) step(n int) (string, error) {
	if b.halted() {
		return "", errRenderHalted
	}
	if int64(n) > b.steps {
		b.steps = 0
		return "", errTooMuchWork
	}
	b.steps -= int64(n)
	return "", nil
}

// made charges a function's result of n bytes (estimated before it is
// made, so that nothing too large is ever built).
func (b *renderBudget) made(n int64) error {
	if b.halted() {
		return errRenderHalted
	}
	if n > maxRenderedBytes {
		return errRenderFunc
	}
	if n > b.bytes {
		return errTooMuchWork
	}
	b.bytes -= n
	return nil
}

// funcs are the template functions of a render: the builtins that make
// strings, each bounded by b, and the step counter.
func (b *renderBudget) funcs() map[string]any {
	bounded := func(grow int64, f func(...any) string) func(...any) (string, error) {
		return func(args ...any) (string, error) {
			if err := b.made(grow * argsSize(args)); err != nil {
				return "", err
			}
			return f(args...), nil
		}
	}
	return map[string]any{
		"print":   bounded(1, fmt.Sprint),
		"println": bounded(1, fmt.Sprintln),
		// Escaping grows a byte to at most 6 (JavaScript's \u0027).
		"html":     bounded(6, texttemplate.HTMLEscaper),
		"js":       bounded(6, texttemplate.JSEscaper),
		"urlquery": bounded(3, texttemplate.URLQueryEscaper),
		"printf": func(format string, args ...any) (string, error) {
			if err := b.made(int64(len(format)) + formatWidths(format) + argsSize(args)); err != nil {
				return "", err
			}
			return fmt.Sprintf(format, args...), nil
		},
		stepFunc: b.step,
	}
}

// stepFunc is the function the inserted step counters call.
const stepFunc = "_outbound_step"

// argsSize estimates the printed size of args: strings by their length,
// the data's lists and maps by their contents, anything else as a number.
func argsSize(args []any) int64 {
	var n int64
	for _, a := range args {
		n += valueSize(a, 0)
	}
	return n
}

func valueSize(v any, depth int) int64 {
	switch v := v.(type) {
	case string:
		return int64(len(v)) + 2
	case []any:
		n := int64(2)
		for _, e := range v {
			n += valueSize(e, depth+1) + 1
		}
		return n
	case map[string]any:
		n := int64(6)
		for k, e := range v {
			n += int64(len(k)) + valueSize(e, depth+1) + 2
		}
		return n
	}
	return 32
}

// formatWidths is what a printf format's widths and precisions may add to
// its output (fmt takes at most 1e6 for each, or for each *).
func formatWidths(format string) int64 {
	var n int64
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		for i++; i < len(format); i++ {
			c := format[i]
			switch {
			case c == '*':
				n += 1e6
			case c >= '0' && c <= '9':
				j := i
				for j < len(format) && format[j] >= '0' && format[j] <= '9' {
					j++
				}
				w, err := strconv.Atoi(format[i:j])
				if err != nil || w > 1e6 {
					w = 1e6
				}
				n += int64(w)
				i = j - 1
			case c == '.' || c == '+' || c == '-' || c == '#' || c == ' ' || c == '[' || c == ']':
			default:
				goto verb
			}
		}
	verb:
	}
	return n
}

// rangeBody is a range and the static size of its body.
type rangeBody struct {
	node *parse.RangeNode
	cost int64
}

// treeCheck walks the trees of one template part (its root and every
// {{define}}d one) for the static rules above.
type treeCheck struct {
	trees    map[string]*parse.Tree
	done     map[string]treeCost
	visiting map[string]bool
	ranges   []rangeBody
}

// treeCost is what a tree costs when run once (without its ranges'
// repeats) and how deep its ranges nest, through its calls.
type treeCost struct {
	cost  int64
	depth int
}

// checkTrees applies the static rules to a part's trees and, when
// instrument is set (a render, not a validation), inserts the step
// counters.
func checkTrees(trees map[string]*parse.Tree, instrument bool) error {
	c := &treeCheck{trees: trees, done: map[string]treeCost{}, visiting: map[string]bool{}}
	// In order of name, so that the first refusal is always the same one.
	for _, name := range slices.Sorted(maps.Keys(trees)) {
		if _, err := c.tree(name); err != nil {
			return err
		}
	}
	if !instrument {
		return nil
	}
	for _, r := range c.ranges {
		r.node.List.Nodes = append([]parse.Node{stepNode(r.node.Position(), r.cost)}, r.node.List.Nodes...)
	}
	for name, tr := range trees {
		if tr != nil && tr.Root != nil {
			tr.Root.Nodes = append([]parse.Node{stepNode(tr.Root.Position(), c.done[name].cost)}, tr.Root.Nodes...)
		}
	}
	return nil
}

// stepCost is what the step counter itself costs, in steps: a function
// call through reflect is worth a few plain nodes.
const stepCost = 4

// stepNode is {{$_outbound_step := _outbound_step N}}, N the cost of
// what it counts and its own: a declaration, so it prints nothing, and
// html/template does not escape it.
func stepNode(pos parse.Pos, cost int64) parse.Node {
	cost += stepCost
	call := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{
		parse.NewIdentifier(stepFunc).SetPos(pos),
		&parse.NumberNode{NodeType: parse.NodeNumber, Pos: pos, IsInt: true, Int64: cost, Text: strconv.FormatInt(cost, 10)},
	}}
	decl := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: pos, Ident: []string{"$" + stepFunc}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Decl: []*parse.VariableNode{decl}, Cmds: []*parse.CommandNode{call}}}
}

func (c *treeCheck) tree(name string) (treeCost, error) {
	if tc, ok := c.done[name]; ok {
		return tc, nil
	}
	if c.visiting[name] {
		return treeCost{}, fmt.Errorf("template %q calls itself (directly or through another): recursion is not allowed", name)
	}
	tr := c.trees[name]
	if tr == nil || tr.Root == nil {
		return treeCost{cost: 1}, nil // executing it fails: "no such template"
	}
	c.visiting[name] = true
	tc, err := c.node(tr.Root)
	delete(c.visiting, name)
	if err != nil {
		return tc, err
	}
	if tc.cost > maxRenderSteps {
		return tc, fmt.Errorf("template %q expands to more than %d steps through its {{template}} calls", name, maxRenderSteps)
	}
	c.done[name] = tc
	return tc, nil
}

func (c *treeCheck) node(n parse.Node) (treeCost, error) {
	switch n := n.(type) {
	case nil:
		return treeCost{}, nil
	case *parse.ListNode:
		var sum treeCost
		if n == nil {
			return sum, nil
		}
		for _, e := range n.Nodes {
			tc, err := c.node(e)
			if err != nil {
				return sum, err
			}
			sum.cost = capSteps(sum.cost + tc.cost)
			sum.depth = max(sum.depth, tc.depth)
		}
		return sum, nil
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode:
		return treeCost{cost: 1}, nil
	case *parse.ActionNode:
		return treeCost{cost: 1 + pipeSize(n.Pipe)}, nil
	case *parse.IfNode:
		return c.branch(&n.BranchNode)
	case *parse.WithNode:
		return c.branch(&n.BranchNode)
	case *parse.RangeNode:
		return c.rangeNode(n)
	case *parse.TemplateNode:
		tc, err := c.tree(n.Name)
		return treeCost{cost: capSteps(1 + pipeSize(n.Pipe) + tc.cost), depth: tc.depth}, err
	}
	return treeCost{}, fmt.Errorf("%s is not allowed in a template", n)
}

func (c *treeCheck) branch(b *parse.BranchNode) (treeCost, error) {
	list, err := c.node(b.List)
	if err != nil {
		return list, err
	}
	alt, err := c.node(b.ElseList)
	return treeCost{cost: capSteps(1 + pipeSize(b.Pipe) + list.cost + alt.cost), depth: max(list.depth, alt.depth)}, err
}

func (c *treeCheck) rangeNode(r *parse.RangeNode) (treeCost, error) {
	if what := constantSource(r.Pipe); what != "" {
		return treeCost{}, fmt.Errorf("{{range %s}} ranges over %s: a range goes over a list or map in the data", r.Pipe, what)
	}
	body, err := c.node(r.List)
	if err != nil {
		return body, err
	}
	if body.depth+1 > maxRangeNesting {
		return body, fmt.Errorf("{{range %s}} holds ranges %d deep: ranges may nest at most %d deep (counting those in the templates it calls)", r.Pipe, body.depth+1, maxRangeNesting)
	}
	alt, err := c.node(r.ElseList)
	if err != nil {
		return alt, err
	}
	c.ranges = append(c.ranges, rangeBody{r, body.cost})
	return treeCost{cost: capSteps(1 + pipeSize(r.Pipe) + body.cost + alt.cost), depth: max(body.depth+1, alt.depth)}, nil
}

// constantSource says what a range's pipeline yields when that is not the
// data: a constant, or the scalar result of a builtin ("" when it is the
// data: a field, variable, dot, index or slice of them).
func constantSource(p *parse.PipeNode) string {
	if p == nil || len(p.Cmds) == 0 {
		return "nothing"
	}
	cmd := p.Cmds[len(p.Cmds)-1]
	if len(cmd.Args) == 0 {
		return "nothing"
	}
	switch a := cmd.Args[0].(type) {
	case *parse.NumberNode, *parse.StringNode, *parse.BoolNode, *parse.NilNode:
		return "a constant (" + a.String() + ")"
	case *parse.PipeNode:
		if len(cmd.Args) == 1 {
			return constantSource(a)
		}
	case *parse.IdentifierNode:
		switch a.Ident {
		case "index", "slice":
			return ""
		case "and", "or":
			for _, arg := range cmd.Args[1:] {
				if what := constantSource(&parse.PipeNode{Cmds: []*parse.CommandNode{{Args: []parse.Node{arg}}}}); what != "" {
					return what
				}
			}
			return ""
		}
		return "the result of " + a.Ident + ", which is not a list or map"
	}
	return ""
}

// pipeSize is the number of commands and operands in a pipeline.
func pipeSize(p *parse.PipeNode) int64 {
	if p == nil {
		return 0
	}
	var n int64
	for _, cmd := range p.Cmds {
		n++
		for _, a := range cmd.Args {
			n++
			if sub, ok := a.(*parse.PipeNode); ok {
				n += pipeSize(sub)
			}
		}
	}
	return n
}

func capSteps(n int64) int64 { return min(n, maxRenderSteps+1) }

// textTrees and htmlTrees are a parsed part's trees by name.
func textTrees(t *texttemplate.Template) map[string]*parse.Tree {
	m := map[string]*parse.Tree{}
	for _, x := range t.Templates() {
		m[x.Name()] = x.Tree
	}
	return m
}

func htmlTrees(t *htmltemplate.Template) map[string]*parse.Tree {
	m := map[string]*parse.Tree{}
	for _, x := range t.Templates() {
		m[x.Name()] = x.Tree
	}
	return m
}

// checkData bounds a render's data: entries of each list and map, depth,
// and size in all. The error names the first place over a limit.
func checkData(data map[string]any) *fieldError {
	size := int64(0)
	var walk func(path string, v any, depth int) *fieldError
	walk = func(path string, v any, depth int) *fieldError {
		if depth > maxDataDepth {
			return badField(path, "data may nest at most %d levels deep", maxDataDepth)
		}
		switch v := v.(type) {
		case string:
			size += int64(len(v))
		case []any:
			if len(v) > maxDataEntries {
				return badField(path, "a list in data may hold at most %d entries (this one has %d)", maxDataEntries, len(v))
			}
			for i, e := range v {
				if fe := walk(path+"["+strconv.Itoa(i)+"]", e, depth+1); fe != nil {
					return fe
				}
			}
		case map[string]any:
			if len(v) > maxDataEntries {
				return badField(path, "an object in data may hold at most %d keys (this one has %d)", maxDataEntries, len(v))
			}
			for _, k := range slices.Sorted(maps.Keys(v)) {
				size += int64(len(k))
				if fe := walk(path+"."+k, v[k], depth+1); fe != nil {
					return fe
				}
			}
		default:
			size += 8
		}
		if size > maxDataBytes {
			return badField("data", "data may hold at most %d bytes", maxDataBytes)
		}
		return nil
	}
	return walk("data", map[string]any(data), 0)
}
