package sendapi

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"outbound/quota"
)

// Every route the handler registers is in openapi.json with its method,
// and nothing else is; the file is served as it is checked in.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: %v, version %q", err, doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	src := ""
	for _, f := range []string{"sendapi.go", "templates_http.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src += string(b)
	}
	var registered []string
	for _, m := range regexp.MustCompile(`HandleFunc\("([A-Z]+ /v1/[^"]*)"`).FindAllStringSubmatch(src, -1) {
		registered = append(registered, m[1])
	}
	sort.Strings(documented)
	sort.Strings(registered)
	if strings.Join(documented, "\n") != strings.Join(registered, "\n") {
		t.Errorf("openapi.json documents\n%s\nthe handler registers\n%s", strings.Join(documented, "\n"), strings.Join(registered, "\n"))
	}

	h := start(t, quota.Limits{PerHour: 1, PerDay: 1})
	resp, err := http.Get(h.srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != strings.TrimSpace(string(openAPI)) {
		t.Fatalf("GET /v1/openapi.json: %s", resp.Status)
	}
}
