package httpapi_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// edge is a server with an MCP stand-in, an allowlisted browser origin and
// a tight failed-authentication limit, driven in process so that each
// request can come from any client address.
type edge struct {
	api    *httpapi.Server
	tokens *auth.HS256
}

const (
	allowedOrigin = "https://console.example"
	publicURL     = "https://brain.example"
)

func newEdge(t *testing.T) *edge {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "edge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokens := auth.NewHS256(testKey, "test-issuer", "test-aud", nil)
	mcpStandIn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	api := httpapi.New(memory.NewService(store, memory.Options{}), httpapi.Options{
		Verifier: tokens, PublicURL: publicURL, MCP: mcpStandIn, SSE: mcpStandIn,
		CORSOrigins:      []string{allowedOrigin},
		AuthFailureLimit: httpapi.AuthFailureLimit{Rate: 0.01, Burst: 3},
	})
	return &edge{api: api, tokens: tokens}
}

// do serves one request as if it came from client (an IP) to a server
// listening on local.
func (e *edge) do(method, path, client, local string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = client + ":40000"
	if local != "" {
		addr, _ := net.ResolveTCPAddr("tcp", local)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
	}
	for k, v := range header {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.api.ServeHTTP(w, r)
	return w
}

func (e *edge) bearer(t *testing.T) map[string]string {
	t.Helper()
	tok, err := e.tokens.Issue(auth.Principal{Subject: "ann", OrgID: "acme", Scopes: auth.AllScopes}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Authorization": "Bearer " + tok}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEdge(t)
	for _, path := range []string{"/health/live", "/api/v1/stats", "/no/such/route"} {
		w := e.do("GET", path, "192.0.2.1", "", e.bearer(t))
		for k, want := range map[string]string{
			"X-Content-Type-Options":    "nosniff",
			"X-Frame-Options":           "DENY",
			"Referrer-Policy":           "no-referrer",
			"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
			"Cache-Control":             "no-store",
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
		} {
			if got := w.Header().Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
	}
}

func TestCORSAllowlist(t *testing.T) {
	e := newEdge(t)
	hdr := e.bearer(t)
	hdr["Origin"] = allowedOrigin
	w := e.do("GET", "/api/v1/stats", "192.0.2.1", "", hdr)
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(w.Header().Get("Vary"), "Origin") {
		t.Errorf("allowed origin: %d, ACAO %q, Vary %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"), w.Header().Get("Vary"))
	}
	if w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("credentials allowed: tokens travel in headers, never cookies")
	}
	if exp := w.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "Retry-After") || !strings.Contains(exp, "X-RateLimit-Remaining") {
		t.Errorf("a browser cannot read the rate-limit headers: expose %q", exp)
	}

	hdr["Origin"] = "https://evil.example"
	w = e.do("GET", "/api/v1/stats", "192.0.2.1", "", hdr)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("foreign origin got ACAO %q", got)
	}

	pre := map[string]string{"Origin": allowedOrigin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
	w = e.do("OPTIONS", "/api/v1/search", "192.0.2.1", "", pre)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != allowedOrigin ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from allowed origin: %d %v", w.Code, w.Header())
	}
	pre["Origin"] = "https://evil.example"
	if w = e.do("OPTIONS", "/api/v1/search", "192.0.2.1", "", pre); w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from foreign origin: %d %v", w.Code, w.Header())
	}
}

func TestAuthFailureLimit(t *testing.T) {
	e := newEdge(t)
	bad := map[string]string{"Authorization": "Bearer not-a-token"}
	for i := range 3 {
		if w := e.do("GET", "/api/v1/stats", "192.0.2.7", "", bad); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, w.Code)
		}
	}
	// The fourth failure empties the bucket; from then on the address is
	// refused before authentication, even with a good token, on REST and MCP.
	if w := e.do("GET", "/api/v1/stats", "192.0.2.7", "", bad); w.Code != http.StatusUnauthorized {
		t.Fatalf("fourth failure: %d, want 401", w.Code)
	}
	for _, path := range []string{"/api/v1/stats", "/mcp"} {
		w := e.do("GET", path, "192.0.2.7", "", e.bearer(t))
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "rate_limited") {
			t.Errorf("%s from the blocked address: %d Retry-After %q %s", path, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	if w := e.do("GET", "/health/ready", "192.0.2.7", "", nil); w.Code != http.StatusOK {
		t.Errorf("health from the blocked address: %d, want 200", w.Code)
	}
	if w := e.do("GET", "/api/v1/stats", "192.0.2.8", "", e.bearer(t)); w.Code != http.StatusOK {
		t.Errorf("another address: %d, want 200", w.Code)
	}
}

func TestMCPOriginAndHost(t *testing.T) {
	e := newEdge(t)
	for _, tc := range []struct {
		name   string
		local  string
		header map[string]string
		want   int
	}{
		{"no origin", "", nil, 200},
		{"own origin", "", map[string]string{"Origin": publicURL}, 200},
		{"allowlisted origin", "", map[string]string{"Origin": allowedOrigin}, 200},
		{"foreign origin", "", map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", "", map[string]string{"Origin": "null"}, 403},
		{"loopback listener, loopback host", "127.0.0.1:8765", map[string]string{"Host": "127.0.0.1:8765"}, 200},
		{"loopback listener, localhost origin", "127.0.0.1:8765", map[string]string{"Host": "localhost:8765", "Origin": "http://localhost:3000"}, 200},
		{"loopback listener, rebound host", "127.0.0.1:8765", map[string]string{"Host": "evil.example:8765"}, 403},
		{"public listener, any host", "192.0.2.50:8765", map[string]string{"Host": "brain.example"}, 200},
	} {
		for _, path := range []string{"/mcp", "/sse"} {
			if w := e.do("POST", path, "192.0.2.9", tc.local, tc.header); w.Code != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.name, path, w.Code, tc.want)
			}
		}
	}
}
