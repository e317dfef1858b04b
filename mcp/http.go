package mcp

import (
	"crypto/subtle"
	"net/http"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// HTTPHandler serves the tools over MCP's streamable HTTP transport, for
// assistants that reach the relay over the network rather than starting
// `outbound mcp`: the admin listener mounts it at /mcp. Every request must
// carry the admin token as its bearer token, as the admin API's do.
//
// It is stateless and answers each request with plain JSON: the tools are
// request and answer, so no session or event stream outlives a request,
// and the admin listener's timeouts hold.
func HTTPHandler(o Options, token string) http.Handler {
	server := NewServer(o)
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return server },
		&sdk.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"missing or wrong bearer token: send 'Authorization: Bearer <contents of data_dir/admin.token>'"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
