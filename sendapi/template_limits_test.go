package sendapi

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"outbound/quota"
	"outbound/store"
)

// spinners are templates that would keep a CPU busy with no output to
// stop at: each is refused, in the part it is in, naming the construct.
var spinners = []struct {
	name, part, src, want string
}{
	{"range over a large number", "text", `{{range 20000000000}}{{end}}`, "{{range 20000000000}} ranges over a constant (20000000000)"},
	{"range over a parenthesized number", "text", `{{range (20000000000)}}{{end}}`, "ranges over a constant"},
	{"range over a string", "subject", `{{range "abc"}}{{end}}`, "ranges over a constant"},
	{"range over or with a number", "text", `{{range or .a 20000000000}}{{end}}`, "ranges over a constant (20000000000)"},
	{"range over len", "text", `{{range len .s}}{{end}}`, "ranges over the result of len"},
	{"range over a number in html", "html", `<p>{{range 20000000000}}{{end}}</p>`, "ranges over a constant"},
	{"three nested ranges", "text", `{{range .a}}{{range $.a}}{{range $.a}}{{end}}{{end}}{{end}}`, "{{range .a}} holds ranges 3 deep"},
	{"nested in if and with", "text", `{{if .x}}{{range .a}}{{with .b}}{{range $.a}}{{else}}{{range $.a}}{{range $.a}}{{end}}{{end}}{{end}}{{end}}{{end}}{{end}}`, "holds ranges 3 deep"},
	{"nested through a define", "html", `{{define "row"}}{{range $.a}}{{range $.a}}{{end}}{{end}}{{end}}{{range .a}}{{template "row" $}}{{end}}`, "holds ranges 3 deep"},
	{"nested in a block", "text", `{{block "b" .}}{{range .a}}{{range .a}}{{range .a}}{{end}}{{end}}{{end}}{{end}}`, "holds ranges 3 deep"},
	{"a range in a define", "text", `{{define "d"}}{{range 1000000000}}{{end}}{{end}}`, "ranges over a constant"},
	{"recursion", "text", `{{define "a"}}{{template "a" .}}{{template "a" .}}{{end}}{{template "a" .}}`, `template "a" calls itself`},
	{"mutual recursion", "text", `{{define "a"}}{{template "b" .}}{{end}}{{define "b"}}{{template "a" .}}{{end}}x`, "calls itself"},
	{"calls that fan out", "text", fanOut(40), "expands to more than"},
}

// fanOut is n templates each calling the next twice: 2^n calls, no ranges.
func fanOut(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{{define "t%d"}}{{template "t%d" .}}{{template "t%d" .}}{{end}}`, i, i+1, i+1)
	}
	fmt.Fprintf(&b, `{{define "t%d"}}x{{end}}{{template "t0" .}}`, n)
	return b.String()
}

func spinnerTemplate(part, src string) map[string]any {
	tm := map[string]any{"subject": "s", "text": "t"}
	tm[part] = src
	return tm
}

func TestTemplateSpinnersRefusedWhenStored(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	for _, s := range spinners {
		code, out := h.call(t, "PUT", "/v1/templates/spin", spinnerTemplate(s.part, s.src))
		e, _ := out["error"].(map[string]any)
		if code != 422 || e["code"] != "invalid_template" || e["field"] != s.part || !strings.Contains(fmt.Sprint(e["message"]), s.want) {
			t.Errorf("%s: %d %v, want 422 on %s naming %q", s.name, code, out, s.part, s.want)
		}
	}
	// What stays allowed: ranges over the data, two deep, through a call.
	ok := map[string]any{"subject": "{{range .a}}{{.}}{{end}}", "text": `{{define "row"}}{{range .}}{{.}}{{end}}{{end}}{{range .rows}}{{template "row" .}}{{else}}none{{end}} {{range $i, $e := index .rows 0}}{{$i}}{{end}} {{range slice .a 1}}{{.}}{{end}}`,
		"html": `<ul>{{range .a}}<li>{{printf "%.2f" .}} {{html .}} {{urlquery .}}</li>{{end}}</ul>`}
	if code, out := h.call(t, "PUT", "/v1/templates/fine", ok); code != 201 {
		t.Fatalf("a bounded template: %d %v", code, out)
	}
	code, out := h.call(t, "POST", "/v1/templates/fine/render", map[string]any{"data": map[string]any{
		"a": []any{1.5, 2.25}, "rows": []any{[]any{"x", "y"}, []any{"z"}}}})
	if code != 200 || out["subject"] != "1.52.25" || out["text"] != "xyz 01 2.25" ||
		out["html"] != "<ul><li>1.50 1.5 1.5</li><li>2.25 2.25 2.25</li></ul>" {
		t.Fatalf("render: %d %v", code, out)
	}
}

// A template stored before these rules is refused when it is rendered
// and when it is sent, before it runs.
func TestTemplateSpinnersRefusedWhenRendered(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	store, err := newTemplates(store.Bolt(h.db), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spinners {
		tm := Template{Name: "old", Subject: "s", Text: "t"}
		switch s.part {
		case "subject":
			tm.Subject = s.src
		case "text":
			tm.Text = s.src
		case "html":
			tm.HTML = s.src
		}
		if _, err := store.put(alice, tm); err != nil {
			t.Fatal(err)
		}
		data := map[string]any{"a": []any{1, 2}, "s": "abc", "x": true}
		code, out := h.call(t, "POST", "/v1/templates/old/render", map[string]any{"data": data})
		if e, _ := out["error"].(map[string]any); code != 422 || e["field"] != s.part || !strings.Contains(fmt.Sprint(e["message"]), s.want) {
			t.Errorf("render %s: %d %v", s.name, code, out)
		}
		resp, out := h.post(t, h.key, map[string]any{"from": alice, "to": []string{"bob@example.net"}, "template": "old", "data": data})
		if _, field, msg := errorOf(t, out); resp.StatusCode != 422 || field != s.part || !strings.Contains(msg, s.want) {
			t.Errorf("send %s: %d %v", s.name, resp.StatusCode, out)
		}
	}
	if len(h.queued(t)) != 0 {
		t.Fatal("a refused template queued a message")
	}
}

// The data is bounded: entries of a list or map, and size in all.
func TestTemplateDataBounded(t *testing.T) {
	h := start(t, quota.Limits{PerHour: 100, PerDay: 100})
	h.call(t, "PUT", "/v1/templates/list", map[string]any{"subject": "s", "text": "{{range .items}}{{.}}{{end}}"})
	for _, c := range []struct {
		data        map[string]any
		field, want string
	}{
		{map[string]any{"items": make([]any, maxDataEntries+1)}, "data.items", "at most 1000 entries"},
		{map[string]any{"items": []any{map[string]any{"deep": make([]any, maxDataEntries+1)}}}, "data.items[0].deep", "at most 1000 entries"},
		{map[string]any{"items": []any{strings.Repeat("x", maxDataBytes/2), strings.Repeat("y", maxDataBytes/2+1)}}, "data", "at most 1048576 bytes"},
	} {
		code, out := h.call(t, "POST", "/v1/templates/list/render", map[string]any{"data": c.data})
		if e, _ := out["error"].(map[string]any); code != 422 || e["field"] != c.field || !strings.Contains(fmt.Sprint(e["message"]), c.want) {
			t.Errorf("data with %s: %d %v", c.field, code, out)
		}
	}
}

// What the static rules cannot see is bounded while it runs: iterations
// times the work of each, and the strings functions make.
func TestTemplateWorkBounded(t *testing.T) {
	// The bounds under test end these renders, not the deadline, however
	// slow the machine.
	defer func(d time.Duration) { renderTimeout = d }(renderTimeout)
	renderTimeout = 5 * time.Minute
	a := make([]any, maxDataEntries)
	for _, c := range []struct {
		name, text, want string
	}{
		{"two ranges over 1000 entries", `{{range .a}}{{range $.a}}{{end}}{{end}}`, "would take more than 250000 steps"},
		{"a range over a number in a variable", `{{$n := 20000000000}}{{range $n}}{{end}}`, "would take more than 250000 steps"},
		{"a string doubled", `{{$x := "0123456789"}}` + strings.Repeat(`{{$x = print $x $x}}`, 40), "would be larger than 2097152 bytes"},
		{"printf widths in a loop", `{{range .a}}{{$x := printf "%1000000d" 1}}{{end}}`, "build more than 16777216 bytes"},
		{"many arguments", `{{$x := printf "%0900000d" 1}}{{$y := print` + strings.Repeat(` $x`, 5) + `}}`, "would be larger than"},
	} {
		tm := Template{Name: "w", Subject: "s", Text: c.text}
		if fe := tm.validate(); fe != nil {
			t.Errorf("%s: refused when stored (%v); the bound under test is the run-time one", c.name, fe)
			continue
		}
		_, fe := tm.render(map[string]any{"a": a})
		if fe == nil || fe.field != "text" || !strings.Contains(fe.msg, c.want) {
			t.Errorf("%s: %v, want %q", c.name, fe, c.want)
		}
	}
}

// A render refused at its deadline stops: the goroutine that ran it ends
// (at its next step) instead of running the template to its end.
func TestTemplateTimeoutStopsTheRender(t *testing.T) {
	defer func(d time.Duration) { renderTimeout = d }(renderTimeout)
	renderTimeout = time.Millisecond
	// Accepted, and slow: 200 x 200 comparisons of two 400 KiB strings
	// that differ at their end, within the step budget.
	tm := Template{Name: "slow", Subject: "s", Text: `{{range .a}}{{range $.a}}{{if eq $.s $.t}}x{{end}}{{end}}{{end}}`}
	if fe := tm.validate(); fe != nil {
		t.Fatal(fe)
	}
	s := strings.Repeat("x", 400<<10)
	data := map[string]any{"a": make([]any, 200), "s": s + "1", "t": s + "2"}

	baseline, halted := runtime.NumGoroutine(), rendersHalted.Load()
	_, fe := tm.render(data)
	if fe == nil || !strings.Contains(fe.msg, "rendering took longer than 1ms") {
		t.Fatalf("render: %v, want the deadline's refusal", fe)
	}
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > baseline || rendersHalted.Load() == halted {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the refusal: %d goroutines (baseline %d), renders stopped %d -> %d",
				runtime.NumGoroutine(), baseline, halted, rendersHalted.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
