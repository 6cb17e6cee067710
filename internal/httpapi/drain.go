package httpapi

import (
	"net/http"
	"strings"
)

// Graceful shutdown, as the server sees it. Drain starts it: from then on
// /health/ready and /health/deps answer 503, and withDrain refuses new work
// with 503, Retry-After and Connection: close, so that clients and load
// balancers go to another replica. Requests already in flight are not
// touched. The health probes keep answering, and so do requests that
// belong to an MCP session this replica already serves (a message posted
// to its SSE stream, a request naming its Mcp-Session-Id): the session
// ends when the server closes its stream, and the client then reconnects
// elsewhere.

var errDraining = &httpError{status: http.StatusServiceUnavailable, code: "unavailable",
	msg: "the server is shutting down; retry on another replica"}

func (s *Server) withDrain(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() && !strings.HasPrefix(r.URL.Path, "/health/") && !inSession(r) {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Connection", "close")
			s.writeError(w, r, errDraining)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// inSession reports a request that continues an MCP session rather than
// starting one: a POST to /sse with its session id, or a request on /mcp
// naming a session (except a GET, which would open a new stream).
func inSession(r *http.Request) bool {
	switch r.URL.Path {
	case "/sse":
		return r.Method == http.MethodPost && r.URL.Query().Get("sessionid") != ""
	case "/mcp":
		return r.Method != http.MethodGet && r.Header.Get("Mcp-Session-Id") != ""
	}
	return false
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }
