package sendapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"regexp"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"

	"outbound/store"
)

// Templates are per user and versioned. On disk, bucket
// "send-api-templates" maps user + NUL + name to the JSON form of
// templateRecord: every version, oldest first. A message sent from a
// template names the version it used in its X-Outbound-Template header and
// in the 202 answer.
var templatesBucket = []byte("send-api-templates")

// Limits on templates: what one may hold, what rendering may produce and
// how long it may take. A template runs the user's own code on the relay,
// so each is bounded.
const (
	MaxTemplateBytes  = 256 << 10
	maxRenderedBytes  = 2 << 20
	maxVersionsKept   = 100
	maxTemplateNameLn = 100
)

// renderTimeout is how long a render may take before it is refused (and
// stopped: template_limits.go); a variable for the tests.
var renderTimeout = 2 * time.Second

// Template is one version of a template.
type Template struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Subject and Text are text/template, HTML is html/template (its
	// output escaped by context). Text may be empty when HTML is not: the
	// plain-text part is then made from the rendered HTML.
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Variables are the names the template declares: each must be in a
	// send's data, or the send is refused naming it.
	Variables []string  `json:"variables,omitempty"`
	Created   time.Time `json:"created"`
}

// templateRecord is every kept version of one template, oldest first.
type templateRecord struct {
	Versions []Template `json:"versions"`
}

var templateName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
var variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// errNoTemplate is a template (or version) that does not exist.
var errNoTemplate = errors.New("no such template")

type templates struct {
	db  store.DB
	now func() time.Time
}

func newTemplates(db store.DB, now func() time.Time) (*templates, error) {
	err := db.Update(func(tx store.Tx) error {
		_, err := tx.CreateBucketIfNotExists(templatesBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating %s bucket: %w", templatesBucket, err)
	}
	return &templates{db: db, now: now}, nil
}

func templateKey(user, name string) []byte { return []byte(user + "\x00" + name) }

// validate checks a template before it is stored (and before a preview):
// its name, size, variables, that each part parses, and that each keeps
// to the rules that bound rendering (template_limits.go).
func (t *Template) validate() *fieldError {
	if len(t.Name) > maxTemplateNameLn || !templateName.MatchString(t.Name) {
		return badField("name", "a template name is letters, digits, '.', '_' and '-', at most %d characters", maxTemplateNameLn)
	}
	if len(t.Subject)+len(t.Text)+len(t.HTML) > MaxTemplateBytes {
		return badField("", "a template may hold at most %d bytes", MaxTemplateBytes)
	}
	if t.Text == "" && t.HTML == "" {
		return badField("text", "a template needs text, html or both")
	}
	if strings.ContainsAny(t.Subject, "\r\n") {
		return badField("subject", "must be one line")
	}
	for i, v := range t.Variables {
		if !variableName.MatchString(v) {
			return badField(fmt.Sprintf("variables[%d]", i), "%q is not a variable name (letters, digits, '_')", v)
		}
	}
	_, fe := t.compile(newRenderBudget(), false)
	return fe
}

// compiled is a template's three parts, parsed and checked.
type compiled struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
}

// compile parses each part of t with the functions of budget b and checks
// it against the rules that keep rendering bounded (template_limits.go).
// For a render (instrument), each range body and template also charges b
// for its steps; a validation only checks.
func (t *Template) compile(b *renderBudget, instrument bool) (*compiled, *fieldError) {
	var c compiled
	var err error
	parseText := func(part, src string) (*texttemplate.Template, *fieldError) {
		x, err := texttemplate.New(part).Option("missingkey=error").Funcs(b.funcs()).Parse(src)
		if err != nil {
			return nil, badField(part, "%v", err)
		}
		if err := checkTrees(textTrees(x), instrument); err != nil {
			return nil, badField(part, "%v", err)
		}
		return x, nil
	}
	var fe *fieldError
	if c.subject, fe = parseText("subject", t.Subject); fe != nil {
		return nil, fe
	}
	if c.text, fe = parseText("text", t.Text); fe != nil {
		return nil, fe
	}
	if c.html, err = htmltemplate.New("html").Option("missingkey=error").Funcs(b.funcs()).Parse(t.HTML); err != nil {
		return nil, badField("html", "%v", err)
	}
	if err := checkTrees(htmlTrees(c.html), instrument); err != nil {
		return nil, badField("html", "%v", err)
	}
	return &c, nil
}

// put stores t as the next version of its name and returns it.
func (s *templates) put(user string, t Template) (*Template, error) {
	t.Created = s.now().UTC()
	err := s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(templatesBucket)
		var rec templateRecord
		if v := b.Get(templateKey(user, t.Name)); v != nil {
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
		}
		t.Version = 1
		if n := len(rec.Versions); n > 0 {
			t.Version = rec.Versions[n-1].Version + 1
		}
		rec.Versions = append(rec.Versions, t)
		if len(rec.Versions) > maxVersionsKept {
			rec.Versions = rec.Versions[len(rec.Versions)-maxVersionsKept:]
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put(templateKey(user, t.Name), v)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// get returns a version of user's template name; version 0 is the latest.
func (s *templates) get(user, name string, version int) (*Template, error) {
	var out *Template
	err := s.db.View(func(tx store.Tx) error {
		v := tx.Bucket(templatesBucket).Get(templateKey(user, name))
		if v == nil {
			return errNoTemplate
		}
		var rec templateRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		for i := len(rec.Versions) - 1; i >= 0; i-- {
			if version == 0 || rec.Versions[i].Version == version {
				out = &rec.Versions[i]
				return nil
			}
		}
		return errNoTemplate
	})
	return out, err
}

// list returns the latest version of each of user's templates, by name.
func (s *templates) list(user string) ([]Template, error) {
	out := []Template{}
	prefix := []byte(user + "\x00")
	err := s.db.View(func(tx store.Tx) error {
		c := tx.Bucket(templatesBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var rec templateRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if n := len(rec.Versions); n > 0 {
				out = append(out, rec.Versions[n-1])
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// remove deletes user's template name, every version.
func (s *templates) remove(user, name string) error {
	return s.db.Update(func(tx store.Tx) error {
		b := tx.Bucket(templatesBucket)
		if b.Get(templateKey(user, name)) == nil {
			return errNoTemplate
		}
		return b.Delete(templateKey(user, name))
	})
}

// rendered is a template's output for one set of data.
type rendered struct {
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html,omitempty"`
}

// render runs t on data. A declared variable missing from data, or any
// key the template reads that data lacks, is a fieldError naming it.
// Rendering is bounded in data, steps, output and time; a render refused
// at its deadline is stopped, not left running (template_limits.go).
func (t *Template) render(data map[string]any) (*rendered, *fieldError) {
	for _, v := range t.Variables {
		if _, ok := data[v]; !ok {
			return nil, badField("data."+v, "template %s (version %d) needs variable %q", t.Name, t.Version, v)
		}
	}
	if fe := checkData(data); fe != nil {
		return nil, fe
	}
	b := newRenderBudget()
	c, fe := t.compile(b, true)
	if fe != nil {
		return nil, fe
	}
	type result struct {
		r  *rendered
		fe *fieldError
	}
	done := make(chan result, 1)
	go func() {
		r, fe := c.execute(t, data, b)
		if b.stopped {
			rendersHalted.Add(1)
		}
		done <- result{r, fe}
	}()
	timer := time.NewTimer(renderTimeout)
	defer timer.Stop()
	select {
	case res := <-done:
		return res.r, res.fe
	case <-timer.C:
		// The next step, function call or write ends the execution.
		b.halt.Store(true)
		return nil, badField("template", "rendering took longer than %s", renderTimeout)
	}
}

func (c *compiled) execute(t *Template, data map[string]any, b *renderBudget) (*rendered, *fieldError) {
	budget := &limitedBuffer{left: maxRenderedBytes, b: b}
	run := func(part string, exec func(io.Writer) error) (string, *fieldError) {
		budget.Reset()
		if err := exec(budget); err != nil {
			return "", execError(err, part)
		}
		return budget.String(), nil
	}
	var r rendered
	var fe *fieldError
	if r.Subject, fe = run("subject", func(w io.Writer) error { return c.subject.Execute(w, data) }); fe != nil {
		return nil, fe
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		return nil, badField("subject", "the rendered subject has a line break")
	}
	if r.Text, fe = run("text", func(w io.Writer) error { return c.text.Execute(w, data) }); fe != nil {
		return nil, fe
	}
	if t.HTML != "" {
		if r.HTML, fe = run("html", func(w io.Writer) error { return c.html.Execute(w, data) }); fe != nil {
			return nil, fe
		}
	}
	if t.Text == "" {
		r.Text = htmlToText(r.HTML)
	}
	return &r, nil
}

// execError is the fieldError of a part's failed execution: a limit, a
// missing data key, or the template's own error.
func execError(err error, part string) *fieldError {
	switch {
	case errors.Is(err, errRenderedTooLarge):
		return badField("template", "the rendered %s is larger than %d bytes", part, maxRenderedBytes)
	case errors.Is(err, errTooMuchWork):
		return badField(part, "rendering the %s would take more than %d steps or build more than %d bytes of strings: "+
			"a range over many entries, nested ranges, or strings built in a loop; send less data or simplify the template", part, maxRenderSteps, maxFuncBytes)
	case errors.Is(err, errRenderFunc):
		return badField(part, "a print, printf, println, html, js or urlquery result in the %s would be larger than %d bytes", part, maxRenderedBytes)
	case errors.Is(err, errRenderHalted):
		return badField("template", "rendering took longer than %s", renderTimeout)
	}
	return badField(missingField(err, part), "%v", err)
}

var missingKey = regexp.MustCompile(`map has no entry for key "([^"]+)"`)

// missingField names the data key an execution error is about, when it is
// a missing one; otherwise the template part.
func missingField(err error, part string) string {
	if m := missingKey.FindStringSubmatch(err.Error()); m != nil {
		return "data." + m[1]
	}
	return part
}

var errRenderedTooLarge = errors.New("rendered output too large")

// limitedBuffer fails writes past its budget, or once the render is
// abandoned, which ends the template's execution.
type limitedBuffer struct {
	bytes.Buffer
	left int
	b    *renderBudget // its halt ends a render abandoned at its deadline
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.b != nil && b.b.halted() {
		return 0, errRenderHalted
	}
	if len(p) > b.left {
		return 0, errRenderedTooLarge
	}
	b.left -= len(p)
	return b.Buffer.Write(p)
}
