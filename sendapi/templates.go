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

	bolt "go.etcd.io/bbolt"
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
	renderTimeout     = 2 * time.Second
	maxVersionsKept   = 100
	maxTemplateNameLn = 100
)

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
	db  *bolt.DB
	now func() time.Time
}

func newTemplates(db *bolt.DB, now func() time.Time) (*templates, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(templatesBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating %s bucket: %w", templatesBucket, err)
	}
	return &templates{db: db, now: now}, nil
}

func templateKey(user, name string) []byte { return []byte(user + "\x00" + name) }

// validate checks a template before it is stored: its name, size,
// variables, and that each part parses.
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
	if _, err := texttemplate.New("subject").Parse(t.Subject); err != nil {
		return badField("subject", "%v", err)
	}
	if _, err := texttemplate.New("text").Parse(t.Text); err != nil {
		return badField("text", "%v", err)
	}
	if _, err := htmltemplate.New("html").Parse(t.HTML); err != nil {
		return badField("html", "%v", err)
	}
	return nil
}

// put stores t as the next version of its name and returns it.
func (s *templates) put(user string, t Template) (*Template, error) {
	t.Created = s.now().UTC()
	err := s.db.Update(func(tx *bolt.Tx) error {
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
	err := s.db.View(func(tx *bolt.Tx) error {
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
	err := s.db.View(func(tx *bolt.Tx) error {
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
	return s.db.Update(func(tx *bolt.Tx) error {
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
// Rendering is bounded in output and time.
func (t *Template) render(data map[string]any) (*rendered, *fieldError) {
	for _, v := range t.Variables {
		if _, ok := data[v]; !ok {
			return nil, badField("data."+v, "template %s (version %d) needs variable %q", t.Name, t.Version, v)
		}
	}
	type result struct {
		r  *rendered
		fe *fieldError
	}
	done := make(chan result, 1)
	go func() {
		r, fe := t.execute(data)
		done <- result{r, fe}
	}()
	select {
	case res := <-done:
		return res.r, res.fe
	case <-time.After(renderTimeout):
		// The goroutine ends by itself: its output is bounded.
		return nil, badField("template", "rendering took longer than %s", renderTimeout)
	}
}

func (t *Template) execute(data map[string]any) (*rendered, *fieldError) {
	budget := &limitedBuffer{left: maxRenderedBytes}
	run := func(part string, exec func(io.Writer) error) (string, *fieldError) {
		budget.Reset()
		if err := exec(budget); err != nil {
			if errors.Is(err, errRenderedTooLarge) {
				return "", badField("template", "the rendered %s is larger than %d bytes", part, maxRenderedBytes)
			}
			return "", badField(missingField(err, part), "%v", err)
		}
		return budget.String(), nil
	}
	subj := texttemplate.Must(texttemplate.New("subject").Option("missingkey=error").Parse(t.Subject))
	text := texttemplate.Must(texttemplate.New("text").Option("missingkey=error").Parse(t.Text))
	html := htmltemplate.Must(htmltemplate.New("html").Option("missingkey=error").Parse(t.HTML))
	var r rendered
	var fe *fieldError
	if r.Subject, fe = run("subject", func(w io.Writer) error { return subj.Execute(w, data) }); fe != nil {
		return nil, fe
	}
	if strings.ContainsAny(r.Subject, "\r\n") {
		return nil, badField("subject", "the rendered subject has a line break")
	}
	if r.Text, fe = run("text", func(w io.Writer) error { return text.Execute(w, data) }); fe != nil {
		return nil, fe
	}
	if t.HTML != "" {
		if r.HTML, fe = run("html", func(w io.Writer) error { return html.Execute(w, data) }); fe != nil {
			return nil, fe
		}
	}
	if t.Text == "" {
		r.Text = htmlToText(r.HTML)
	}
	return &r, nil
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

// limitedBuffer fails writes past its budget, which ends a runaway
// template's execution.
type limitedBuffer struct {
	bytes.Buffer
	left int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if len(p) > b.left {
		return 0, errRenderedTooLarge
	}
	b.left -= len(p)
	return b.Buffer.Write(p)
}
