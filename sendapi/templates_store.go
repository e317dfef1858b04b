package sendapi

import (
	"errors"
	"time"

	"outbound/store"
)

// Templates is the template store as other packages use it: the admin
// API (and through it the web interface's editor) keeps users' templates
// with the very store, validation and rendering the send API uses, so a
// template saved in one is sent and previewed identically in the other.
type Templates struct{ s *templates }

// ErrNoTemplate is a template (or version) that does not exist.
var ErrNoTemplate = errNoTemplate

// Rendered is a template's output for one set of data.
type Rendered = rendered

// TemplateError is a template that does not validate or render: Field
// names what is wrong ("html", "data.name"; "" for the template's size),
// Message says how, in the words the send API answers with.
type TemplateError struct {
	Field, Message string
}

func (e *TemplateError) Error() string { return e.Message }

func templateError(fe *fieldError) error {
	if fe == nil {
		return nil
	}
	return &TemplateError{Field: fe.field, Message: fe.msg}
}

// OpenTemplates opens the template store in db (the send API's bucket).
func OpenTemplates(db store.DB, now func() time.Time) (*Templates, error) {
	if now == nil {
		now = time.Now
	}
	s, err := newTemplates(db, now)
	if err != nil {
		return nil, err
	}
	return &Templates{s: s}, nil
}

// List is the latest version of each of user's templates, by name.
func (t *Templates) List(user string) ([]Template, error) { return t.s.list(user) }

// Get is a version of user's template name; version 0 is the latest.
func (t *Templates) Get(user, name string, version int) (*Template, error) {
	return t.s.get(user, name, version)
}

// Put validates tpl and stores it as the next version of its name; a
// template that does not validate is a *TemplateError.
func (t *Templates) Put(user string, tpl Template) (*Template, error) {
	if err := templateError(tpl.validate()); err != nil {
		return nil, err
	}
	return t.s.put(user, tpl)
}

// Delete removes user's template name, every version.
func (t *Templates) Delete(user, name string) error { return t.s.remove(user, name) }

// Render renders a version (0: the latest) of user's template name with
// data, as a send would; a missing variable is a *TemplateError naming it.
func (t *Templates) Render(user, name string, version int, data map[string]any) (*Template, *Rendered, error) {
	tpl, err := t.s.get(user, name, version)
	if err != nil {
		return nil, nil, err
	}
	out, fe := tpl.render(data)
	if fe != nil {
		return tpl, nil, templateError(fe)
	}
	return tpl, out, nil
}

// IsTemplateError reports whether err is a template's refusal.
func IsTemplateError(err error) bool {
	var te *TemplateError
	return errors.As(err, &te)
}

// Preview validates tpl and renders it with data without storing it: the
// editor's preview of what is being written, by the same rules as Render.
func (t *Templates) Preview(tpl Template, data map[string]any) (*Rendered, error) {
	if err := templateError(tpl.validate()); err != nil {
		return nil, err
	}
	out, fe := tpl.render(data)
	if fe != nil {
		return nil, templateError(fe)
	}
	return out, nil
}
