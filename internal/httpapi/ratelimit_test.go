package httpapi_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/redistest"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// limitedServer serves the API with lim on a SQLite store.
func limitedServer(t *testing.T, lim *httpapi.RateLimiter, opts httpapi.Options) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "rl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokens := auth.NewHS256(testKey, "test-issuer", "test-aud", nil)
	opts.Verifier, opts.RateLimiter = tokens, lim
	api := httpapi.New(memory.NewService(store, memory.Options{}), opts)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, api: api, store: store, tokens: tokens}
}

type rejections struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *rejections) add(class string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[class]++
}

func (r *rejections) get(class string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[class]
}

// TestRateLimitPerPrincipal: one principal uses up its reads and gets 429
// with Retry-After, the headers and the error envelope; another principal
// and another class of the same principal are unaffected; a class set to 0
// is not limited.
func TestRateLimitPerPrincipal(t *testing.T) {
	limits, err := httpapi.ParseRateLimits("read=3/1h, search=2/1h, write=0", httpapi.DefaultRateLimits())
	if err != nil {
		t.Fatal(err)
	}
	var rej rejections
	lim := httpapi.NewRateLimiter(httpapi.RateLimiterOptions{Limits: limits, OnReject: rej.add})
	f := limitedServer(t, lim, httpapi.Options{})
	alice, bob := f.token("alice", "acme"), f.token("bob", "acme")

	for i := range 3 {
		r := f.do("GET", "/api/v1/memories", alice, nil)
		if r.status != http.StatusOK {
			t.Fatalf("alice read %d: %d %s", i, r.status, r.body)
		}
		if got := r.header.Get("X-RateLimit-Limit"); got != "3" {
			t.Errorf("X-RateLimit-Limit %q, want 3", got)
		}
		if got := r.header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Errorf("read %d: X-RateLimit-Remaining %q, want %d", i, got, 2-i)
		}
		if reset, _ := strconv.Atoi(r.header.Get("X-RateLimit-Reset")); reset < 1 || reset > 3600 {
			t.Errorf("read %d: X-RateLimit-Reset %q, want 1..3600 seconds", i, r.header.Get("X-RateLimit-Reset"))
		}
	}
	r := f.do("GET", "/api/v1/memories", alice, nil)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("alice's 4th read: %d %s, want 429", r.status, r.body)
	}
	if code, _, _ := r.errorOf(t); code != "rate_limited" {
		t.Errorf("error code %q, want rate_limited", code)
	}
	// One read every 20 minutes: the next one is about 1200 s away.
	if retry, _ := strconv.Atoi(r.header.Get("Retry-After")); retry < 1100 || retry > 1200 {
		t.Errorf("Retry-After %q, want about 1200", r.header.Get("Retry-After"))
	}
	if r.header.Get("X-RateLimit-Remaining") != "0" || r.header.Get("X-RateLimit-Limit") != "3" {
		t.Errorf("429 headers: %v", r.header)
	}
	// The OpenAPI document describes exactly the headers a 429 carries.
	doc, err := httpapi.OpenAPI("test")
	if err != nil {
		t.Fatal(err)
	}
	limited := doc["paths"].(map[string]any)["/api/v1/memories"].(map[string]any)["get"].(map[string]any)["responses"].(map[string]any)["429"].(map[string]any)
	documented := map[string]bool{}
	for name := range limited["headers"].(map[string]any) {
		documented[http.CanonicalHeaderKey(name)] = true
		if r.header.Get(name) == "" {
			t.Errorf("OpenAPI documents %s on 429, which the answer lacks", name)
		}
	}
	for name := range r.header {
		if (strings.HasPrefix(name, "X-Ratelimit-") || name == "Retry-After") && !documented[name] {
			t.Errorf("429 carries %s, which OpenAPI does not document", name)
		}
	}
	if n := rej.get(httpapi.ClassRead); n != 1 {
		t.Errorf("%d read rejections counted, want 1", n)
	}

	if r := f.do("GET", "/api/v1/memories", bob, nil); r.status != http.StatusOK || r.header.Get("X-RateLimit-Remaining") != "2" {
		t.Errorf("bob's first read: %d remaining %q, want 200 and 2", r.status, r.header.Get("X-RateLimit-Remaining"))
	}
	if r := f.do("POST", "/api/v1/search", alice, map[string]any{"query": "x"}); r.status != http.StatusOK || r.header.Get("X-RateLimit-Limit") != "2" {
		t.Errorf("alice's search (another class): %d limit %q", r.status, r.header.Get("X-RateLimit-Limit"))
	}
	for i := range 5 {
		r := f.do("POST", "/api/v1/memories", alice, map[string]any{"content": "fact " + strconv.Itoa(i)})
		if r.status != http.StatusCreated || r.header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("write %d with writes unlimited: %d %q", i, r.status, r.header.Get("X-RateLimit-Limit"))
		}
	}
}

// TestRateLimitSharedValkey: two servers on one Valkey share each
// principal's budget; with Valkey down requests go through and that is
// reported.
func TestRateLimitSharedValkey(t *testing.T) {
	rs := redistest.New(t)
	limits, _ := httpapi.ParseRateLimits("read=4/1h", httpapi.DefaultRateLimits())
	var servers []*fixture
	var unavailable rejections
	for range 2 {
		v, err := kv.NewValkey(rs.URL(), "rl-test:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		lim := httpapi.NewRateLimiter(httpapi.RateLimiterOptions{Limits: limits, Shared: v, OnUnavailable: unavailable.add})
		servers = append(servers, limitedServer(t, lim, httpapi.Options{}))
	}
	alice := servers[0].token("alice", "acme")
	for i := range 4 {
		if r := servers[i%2].do("GET", "/api/v1/memories", alice, nil); r.status != http.StatusOK {
			t.Fatalf("read %d: %d", i, r.status)
		}
	}
	for i := range 2 {
		if r := servers[i].do("GET", "/api/v1/memories", alice, nil); r.status != http.StatusTooManyRequests {
			t.Fatalf("read on server %d past the shared limit: %d, want 429", i, r.status)
		}
	}
	rs.Stop()
	if r := servers[0].do("GET", "/api/v1/memories", alice, nil); r.status != http.StatusOK || r.header.Get("X-RateLimit-Limit") != "" {
		t.Fatalf("read with Valkey down: %d, want 200 without limit headers (fail open)", r.status)
	}
	if unavailable.get(httpapi.ClassRead) != 1 {
		t.Fatalf("fail-open not reported")
	}
}

func TestParseRateLimits(t *testing.T) {
	got, err := httpapi.ParseRateLimits("read=10,search=100/1s,admin=0,mcp=5000/1h", httpapi.DefaultRateLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]httpapi.RateLimit{
		"read": {10, time.Minute}, "search": {100, time.Second}, "admin": {0, time.Minute},
		"mcp": {5000, time.Hour}, "write": httpapi.DefaultRateLimits()["write"],
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for _, bad := range []string{"reads=1", "read", "read=-1", "read=x", "read=1/0s", "read=1/fortnight"} {
		if _, err := httpapi.ParseRateLimits(bad, httpapi.DefaultRateLimits()); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRouteClass(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/api/v1/memories", "read"},
		{"GET", "/api/v1/memories/x/history", "read"},
		{"POST", "/api/v1/memories", "write"},
		{"DELETE", "/api/v1/memories/x", "write"},
		{"POST", "/api/v1/relations", "write"},
		{"POST", "/api/v1/search", "search"},
		{"GET", "/api/v1/admin/api-keys", "admin"},
		{"POST", "/api/v1/admin/api-keys", "admin"},
		{"GET", "/api/v1/audit", "admin"},
		{"DELETE", "/api/v1/gdpr/subjects/alice", "admin"},
		{"GET", "/api/v1/admin/retention", "admin"},
		{"POST", "/mcp", "mcp"},
		{"POST", "/sse", "mcp"},
	} {
		if got := httpapi.RouteClass(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.path, got, c.want)
		}
	}
	// Every REST route is in a class that has a default limit.
	for _, rt := range httpapi.Routes() {
		if _, ok := httpapi.DefaultRateLimits()[httpapi.RouteClass(rt.Method, rt.Path)]; !ok {
			t.Errorf("%s %s has no default limit", rt.Method, rt.Path)
		}
	}
}

// TestClientIP: forwarding headers are believed only from a trusted proxy,
// and then the nearest untrusted hop is the client.
func TestClientIP(t *testing.T) {
	trusted, err := httpapi.ParseTrustedProxies([]string{"10.0.0.0/8", "fd00::/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, remote, xff, realIP, want string
	}{
		{"direct client", "203.0.113.5:1234", "", "", "203.0.113.5"},
		{"direct client forging XFF", "203.0.113.5:1234", "1.2.3.4", "5.6.7.8", "203.0.113.5"},
		{"trusted proxy", "10.1.2.3:1234", "198.51.100.9", "", "198.51.100.9"},
		{"client prepends a forged hop", "10.1.2.3:1234", "1.2.3.4, 198.51.100.9", "", "198.51.100.9"},
		{"two trusted proxies", "10.1.2.3:1234", "198.51.100.9, 10.9.9.9", "", "198.51.100.9"},
		{"single trusted address", "192.0.2.7:80", "198.51.100.9", "", "198.51.100.9"},
		{"untrusted neighbour of a trusted address", "192.0.2.8:80", "198.51.100.9", "", "192.0.2.8"},
		{"X-Real-IP from a trusted proxy", "10.1.2.3:1234", "", "198.51.100.10", "198.51.100.10"},
		{"IPv6 proxy and client", "[fd00::1]:443", "2001:db8::5", "", "2001:db8::5"},
		{"hop with a port", "10.1.2.3:1234", "198.51.100.9:5555", "", "198.51.100.9"},
		{"garbage hop", "10.1.2.3:1234", "nonsense", "", "10.1.2.3"},
		{"only trusted hops", "10.1.2.3:1234", "10.4.4.4", "", "10.4.4.4"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:1234", "198.51.100.9", "", "198.51.100.9"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if c.realIP != "" {
			r.Header.Set("X-Real-IP", c.realIP)
		}
		if got := httpapi.ClientIP(r, trusted); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
		if got := httpapi.ClientIP(r, nil); got != netip.MustParseAddrPort(c.remote).Addr().Unmap().String() {
			t.Errorf("%s without trusted proxies: %s", c.name, got)
		}
	}
	// Several X-Forwarded-For lines read as one list.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:1"
	r.Header.Add("X-Forwarded-For", "198.51.100.1")
	r.Header.Add("X-Forwarded-For", "198.51.100.2, 10.0.0.9")
	if got := httpapi.ClientIP(r, trusted); got != "198.51.100.2" {
		t.Errorf("two header lines: %s", got)
	}
	if _, err := httpapi.ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// TestRateLimitByClientBehindProxy: without a principal (the auth-failure
// throttle) clients behind a trusted proxy are told apart by their own
// address, not the proxy's.
func TestAuthFailureLimitBehindProxy(t *testing.T) {
	trusted, _ := httpapi.ParseTrustedProxies([]string{"10.0.0.0/8"})
	var logs syncBuf
	f := limitedServer(t, nil, httpapi.Options{TrustedProxies: trusted, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		AuthFailureLimit: httpapi.AuthFailureLimit{Rate: 0.001, Burst: 2}})
	do := func(client string) int {
		req := httptest.NewRequest("GET", "/api/v1/memories", nil)
		req.RemoteAddr = "10.0.0.1:5000"
		req.Header.Set("X-Forwarded-For", client)
		req.Header.Set("Authorization", "Bearer nope")
		w := httptest.NewRecorder()
		f.api.ServeHTTP(w, req)
		return w.Code
	}
	for range 3 {
		do("198.51.100.1")
	}
	if code := do("198.51.100.1"); code != http.StatusTooManyRequests {
		t.Fatalf("client after repeated failures: %d, want 429", code)
	}
	if code := do("198.51.100.2"); code != http.StatusUnauthorized {
		t.Fatalf("another client behind the same proxy: %d, want 401", code)
	}
	if l := logs.String(); !strings.Contains(l, `"client":"198.51.100.2"`) || strings.Contains(l, `"client":"10.0.0.1"`) {
		t.Errorf("request log lines do not name the client behind the proxy:\n%s", l)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDrainRefusesNewWork: once draining, REST requests and new MCP
// sessions get 503 with Retry-After, while the health probes answer and a
// message into an existing MCP session still goes through.
func TestDrainRefusesNewWork(t *testing.T) {
	mcpStandIn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	f := limitedServer(t, nil, httpapi.Options{MCP: mcpStandIn, SSE: mcpStandIn,
		Checks: []httpapi.Check{{Name: "store", Critical: true, Probe: func(context.Context) error { return nil }}}})
	tok := f.token("alice", "acme")
	if r := f.do("GET", "/api/v1/memories", tok, nil); r.status != http.StatusOK {
		t.Fatalf("before drain: %d", r.status)
	}
	f.api.Drain()
	r := f.do("GET", "/api/v1/memories", tok, nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("REST while draining: %d %v", r.status, r.header)
	}
	if code, _, _ := r.errorOf(t); code != "unavailable" {
		t.Errorf("code %q", code)
	}
	for _, c := range []struct {
		method, path string
		header       []string
		want         int
	}{
		{"GET", "/sse", nil, http.StatusServiceUnavailable},
		{"POST", "/mcp", nil, http.StatusServiceUnavailable},
		{"GET", "/mcp", []string{"Mcp-Session-Id", "s1"}, http.StatusServiceUnavailable},
		{"POST", "/sse?sessionid=abc", nil, http.StatusAccepted},
		{"POST", "/mcp", []string{"Mcp-Session-Id", "s1"}, http.StatusAccepted},
		{"GET", "/health/live", nil, http.StatusOK},
		{"GET", "/health/ready", nil, http.StatusServiceUnavailable},
		{"GET", "/health/deps", nil, http.StatusServiceUnavailable},
	} {
		if r := f.do(c.method, c.path, tok, "{}", c.header...); r.status != c.want {
			t.Errorf("%s %s while draining: %d, want %d", c.method, c.path, r.status, c.want)
		}
	}
}

// TestHealthDeps: every check runs with its latency; a schema behind the
// binary fails readiness and says why; breakers are listed; every outcome
// is reported.
func TestHealthDeps(t *testing.T) {
	var mu sync.Mutex
	schemaErr := errors.New("database schema is at version 4, this binary needs 5")
	up := map[string]bool{}
	state := "closed"
	f := limitedServer(t, nil, httpapi.Options{
		Checks: []httpapi.Check{
			{Name: "store", Critical: true, Probe: func(context.Context) error { return nil }},
			{Name: "schema", Critical: true, Public: true, Probe: func(context.Context) error { return schemaErr }},
			{Name: "valkey", Probe: func(context.Context) error { return errors.New("dial tcp 10.0.0.5:6379: secret host") }},
		},
		Breakers: []httpapi.Breaker{{Name: "embedder", State: func() string { mu.Lock(); defer mu.Unlock(); return state }}},
		OnDependency: func(name string, ok bool) {
			mu.Lock()
			defer mu.Unlock()
			up[name] = ok
		},
	})
	r := f.do("GET", "/health/ready", "", nil)
	var rep struct {
		Status, Reason string
		Deps           []struct {
			Name, Status, Error string
			LatencyMS           float64 `json:"latency_ms"`
		}
		Breakers []struct{ Name, State string }
	}
	r.decode(t, &rep)
	if r.status != http.StatusServiceUnavailable || rep.Reason != "schema: "+schemaErr.Error() {
		t.Fatalf("ready with an old schema: %d %s", r.status, r.body)
	}
	r = f.do("GET", "/health/deps", "", nil)
	r.decode(t, &rep)
	if r.status != http.StatusServiceUnavailable || len(rep.Deps) != 3 || len(rep.Breakers) != 1 || rep.Breakers[0].State != "closed" {
		t.Fatalf("deps: %d %s", r.status, r.body)
	}
	if d := rep.Deps[2]; d.Name != "valkey" || d.Status != "unavailable" || d.Error != "unreachable" {
		t.Errorf("valkey: %+v (a non-public error must not be shown)", d)
	}
	mu.Lock()
	if !up["store"] || up["schema"] || up["valkey"] || len(up) != 3 {
		t.Errorf("reported %v", up)
	}
	state = "open"
	mu.Unlock()
	r = f.do("GET", "/health/deps", "", nil)
	r.decode(t, &rep)
	if rep.Breakers[0].State != "open" {
		t.Errorf("breaker state not current: %s", r.body)
	}
}
