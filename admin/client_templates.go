package admin

import (
	"net/url"

	"outbound/sendapi"
)

func templatesPath(user string) string { return "/api/users/" + url.PathEscape(user) + "/templates" }

// Templates is GET /api/users/{name}/templates: the latest version of
// each of the user's templates.
func (c *Client) Templates(user string) ([]sendapi.Template, error) {
	return list[sendapi.Template](c, templatesPath(user))
}

// Template is GET /api/users/{name}/templates/{tmpl}: the latest version.
func (c *Client) Template(user, name string) (*sendapi.Template, error) {
	return get[sendapi.Template](c, "GET", templatesPath(user)+"/"+url.PathEscape(name), nil)
}

// PutTemplate is PUT /api/users/{name}/templates/{tmpl}: the new version.
func (c *Client) PutTemplate(user, name string, req TemplateRequest) (*sendapi.Template, error) {
	return get[sendapi.Template](c, "PUT", templatesPath(user)+"/"+url.PathEscape(name), req)
}

// RenderTemplate is POST /api/users/{name}/templates/{tmpl}/render.
func (c *Client) RenderTemplate(user, name string, req RenderRequest) (*RenderResult, error) {
	return get[RenderResult](c, "POST", templatesPath(user)+"/"+url.PathEscape(name)+"/render", req)
}
