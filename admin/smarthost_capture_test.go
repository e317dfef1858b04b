package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"outbound/admin"
	"outbound/internal/admintest"
	"outbound/smarthost"
)

// A smarthost of kind capture is added with nothing but its name: saved
// without dialling, its test saying it captures, shown with its kind;
// users can be routed through it. An smtp smarthost shows no kind, as
// before kinds existed.
func TestCaptureSmarthostAddTestAndRoute(t *testing.T) {
	e := admintest.New(t)
	e.AddSmarthost(t, "sg")
	var res admin.SmarthostResult
	code, body := e.Call(t, "POST", "/api/smarthosts", admintest.Token, `{"name":"staging","kind":"capture"}`)
	decode(t, body, &res)
	if code != http.StatusCreated || !res.Saved || res.Smarthost.Kind != "capture" || res.Test == nil || !res.Test.OK ||
		len(res.Test.Steps) != 1 || res.Test.Steps[0].Name != "capture" {
		t.Fatalf("add: %d %s", code, body)
	}
	if h, err := e.Smarthosts.Get("staging"); err != nil || !h.Captures() || h.Host != "" {
		t.Fatalf("stored: %+v %v", h, err)
	}
	code, body = e.Call(t, "POST", "/api/smarthosts/staging/test", admintest.Token, nil)
	decode(t, body, &res)
	if code != http.StatusOK || !res.Test.OK || !strings.Contains(res.Test.Target, "capture") ||
		!strings.Contains(res.Test.Steps[0].Reply, "nothing to connect to") {
		t.Fatalf("test: %d %s", code, body)
	}
	if code, body := e.Call(t, "GET", "/api/smarthosts/sg", admintest.Token, nil); code != http.StatusOK || strings.Contains(body, `"kind"`) {
		t.Fatalf("an smtp smarthost shows a kind, unlike before kinds: %d %s", code, body)
	}
	e.AddUsers(t, "app@example.com")
	if _, err := e.Client.SetRoutes(admin.RouteRequest{Users: []string{"app@example.com"}, Smarthost: "staging"}); err != nil {
		t.Fatal(err)
	}
	if routeOf(t, e, "app@example.com") != "staging" {
		t.Fatal("not routed through staging")
	}
}

// Capture takes none of SMTP's settings: each refused with 400 by name;
// an unknown kind too.
func TestCaptureSmarthostBadInput(t *testing.T) {
	e := admintest.New(t)
	e.AddSmarthost(t, "sg")
	for _, c := range []struct {
		name string
		body string
		want string
	}{
		{"host", `{"name":"c","kind":"capture","host":"smtp.example.com"}`, "takes no host"},
		{"port and tls", `{"name":"c","kind":"capture","port":587,"tls":"starttls"}`, "takes no port, tls"},
		{"preset", `{"name":"c","kind":"capture","preset":"sendgrid"}`, "takes no preset, host, port, tls, username"},
		{"username", `{"name":"c","kind":"capture","username":"u","password":"p"}`, "takes no username"},
		{"password", `{"name":"c","kind":"capture","password":"p"}`, "takes no password"},
		{"fallback", `{"name":"c","kind":"capture","fallback":"sg"}`, "takes no fallback"},
		{"spf", `{"name":"c","kind":"capture","spf_include":"x.example","spf_policy":"warn"}`, "takes no spf_include, spf_policy"},
		{"unknown kind", `{"name":"c","kind":"mirror","host":"smtp.example.com","port":587,"tls":"starttls"}`, `kind "mirror"`},
	} {
		code, body := e.Call(t, "POST", "/api/smarthosts", admintest.Token, c.body)
		if code != http.StatusBadRequest || !strings.Contains(errorOf(body), c.want) {
			t.Errorf("%s: %d %s; want 400 with %q", c.name, code, body, c.want)
		}
	}
	if _, err := e.Smarthosts.Get("c"); err == nil {
		t.Fatal("a refused capture smarthost was stored")
	}
	// Capture is no smarthost's fallback.
	if _, err := e.Client.AddSmarthost(admin.SmarthostRequest{Name: "staging", Kind: "capture"}); err != nil {
		t.Fatal(err)
	}
	fb := "staging"
	_, err := e.Client.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Fallback: &fb})
	if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "is of kind capture") {
		t.Fatalf("capture as fallback: %v", err)
	}
}

// PUT kind "capture" drops the SMTP settings and the password; SMTP
// settings given with it are refused; back to "smtp" needs them again,
// and the connection is tested as for any smtp smarthost.
func TestCaptureSmarthostKindChanges(t *testing.T) {
	e := admintest.New(t)
	e.AddSmarthost(t, "sg")
	capture, host := "capture", "smtp.example.com"
	_, err := e.Client.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Kind: &capture, Host: &host})
	if statusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "takes no host") {
		t.Fatalf("capture with a host: %v", err)
	}
	res, err := e.Client.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Kind: &capture})
	if err != nil || res.Smarthost.Kind != "capture" || res.Smarthost.Host != "" || res.Smarthost.Password != "" || !res.Test.OK {
		t.Fatalf("to capture: %v %+v", err, res)
	}
	h, err := e.Smarthosts.Get("sg")
	if err != nil || !h.Captures() || len(h.SealedPassword) != 0 || h.Username != "" || h.SPFInclude != "" || h.CAFile != "" {
		t.Fatalf("stored: %+v %v", h, err)
	}

	smtp := "smtp"
	if _, err := e.Client.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Kind: &smtp}); statusOf(err) != http.StatusBadRequest ||
		!strings.Contains(err.Error(), "not a host name") {
		t.Fatalf("back to smtp without settings: %v", err)
	}
	req := e.SmarthostRequest("sg")
	res, err = e.Client.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Kind: &smtp, Host: &req.Host, Port: &req.Port,
		TLS: &req.TLS, Username: &req.Username, Password: &req.Password, CAFile: &req.CAFile})
	if err != nil || res.Smarthost.Kind != "" || !res.Test.OK || res.Test.Steps[0].Name != "connect" || res.Smarthost.Password != "****xyz789" {
		t.Fatalf("back to smtp: %v %+v", err, res)
	}
}

// On a relay that looks like production, a smarthost cannot be added as,
// or made, of kind capture: 409 naming allow_capture_in_production, and
// nothing changes; smtp smarthosts are untouched by the rule.
func TestCaptureSmarthostRefusedInProduction(t *testing.T) {
	e := admintest.NewWith(t, func(o *admin.Options) { o.RefuseCaptureSmarthosts = true })
	e.AddSmarthost(t, "sg")
	_, err := e.Client.AddSmarthost(admin.SmarthostRequest{Name: "staging", Kind: "capture"})
	if statusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "allow_capture_in_production = true") {
		t.Fatalf("add: %v", err)
	}
	capture := "capture"
	_, err = e.Client.UpdateSmarthost("sg", admin.SmarthostUpdateRequest{Kind: &capture})
	if statusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "allow_capture_in_production") {
		t.Fatalf("update: %v", err)
	}
	if _, err := e.Smarthosts.Get("staging"); err == nil {
		t.Fatal("the refused capture smarthost was stored")
	}
	if h, _ := e.Smarthosts.Get("sg"); h.Captures() || len(h.SealedPassword) == 0 {
		t.Fatalf("the refused change was stored: %+v", h)
	}
	// A capture smarthost left from before can still be made smtp.
	if _, err := e.Smarthosts.Add(smarthost.Smarthost{Name: "old", Kind: smarthost.KindCapture}, ""); err != nil {
		t.Fatal(err)
	}
	req := e.SmarthostRequest("old")
	smtp := "smtp"
	if _, err := e.Client.UpdateSmarthost("old", admin.SmarthostUpdateRequest{Kind: &smtp, Host: &req.Host, Port: &req.Port,
		TLS: &req.TLS, Username: &req.Username, Password: &req.Password, CAFile: &req.CAFile}); err != nil {
		t.Fatalf("capture back to smtp: %v", err)
	}
}
