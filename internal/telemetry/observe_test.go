package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
	"github.com/codingbrain/codingbrain/internal/telemetry"
)

// The whole server as serve wires it — REST with MCP mounted, over the
// memory service on an observed SQLite store — recording into a registry,
// an in-memory span exporter and a log buffer, driven by real HTTP and MCP
// clients.

// syncBuffer collects log output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type world struct {
	url     string
	reg     *prometheus.Registry
	metrics *telemetry.Metrics
	spans   *tracetest.InMemoryExporter
	ended   chan struct{} // a send after every exported span
	logs    *syncBuffer
	tokens  *auth.HS256
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	inner, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "world.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	w := &world{reg: prometheus.NewRegistry(), spans: tracetest.NewInMemoryExporter(), logs: &syncBuffer{}, ended: make(chan struct{}, 1)}
	w.metrics, err = telemetry.NewMetrics(w.reg, telemetry.Build{Version: "test", Revision: "abc123"})
	if err != nil {
		t.Fatal(err)
	}
	tr := telemetry.NewTestTracing(&notifyExporter{InMemoryExporter: w.spans, ended: w.ended})
	log := telemetry.NewLogger(w.logs, telemetry.LogOptions{Format: "json"})
	w.tokens = auth.NewHS256(bytes.Repeat([]byte("k"), 32), "test-issuer", "test-aud", nil)
	svc := memory.NewService(telemetry.ObserveStore(inner, w.metrics, tr.Provider), memory.Options{})
	mcpSrv := mcpserver.New(svc, mcpserver.Options{
		Verifier: w.tokens, Logger: log, Version: "test", Metrics: w.metrics, TracerProvider: tr.Provider,
	})
	api := httpapi.New(svc, httpapi.Options{
		Verifier: w.tokens, Logger: log, Version: "test", MCP: mcpSrv.Handler(), SSE: mcpSrv.SSEHandler(),
		Metrics: w.metrics, TracerProvider: tr.Provider,
		MetricsHandler:   promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{}),
		AuthFailureLimit: httpapi.AuthFailureLimit{Rate: 100, Burst: 100},
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

// notifyExporter signals ended after each export, so that a test can wait
// for a span that ends after the client has its answer.
type notifyExporter struct {
	*tracetest.InMemoryExporter
	ended chan struct{}
}

func (n *notifyExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := n.InMemoryExporter.ExportSpans(ctx, spans)
	select {
	case n.ended <- struct{}{}:
	default:
	}
	return err
}

// waitSpans returns the exported spans once done says they are complete;
// it re-checks after every export and gives up after 10 seconds.
func (w *world) waitSpans(t *testing.T, done func(tracetest.SpanStubs) bool) tracetest.SpanStubs {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		if ss := w.spans.GetSpans(); done(ss) {
			return ss
		}
		select {
		case <-w.ended:
		case <-timeout.C:
			t.Fatal("the expected spans were not exported within 10s")
		}
	}
}

func (w *world) token(t *testing.T, scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = auth.AllScopes
	}
	tok, err := w.tokens.Issue(auth.Principal{Subject: "alice", OrgID: "acme", Scopes: scopes, Grants: []string{"org:acme"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends one REST request and returns the status, the X-Request-ID and
// the body.
func (w *world) do(t *testing.T, method, path, token string, body any, header ...string) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, w.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Request-ID"), b
}

// headerTransport adds the token and fixed headers to every request.
type headerTransport struct {
	token  string
	header map[string]string
}

func (h *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+h.token)
	for k, v := range h.header {
		req.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// connect opens an MCP session (protocol 2025-11-25, sessionful) or a
// stateless client (2026-07-28) at /mcp.
func (w *world) connect(t *testing.T, protocol, token string, header map[string]string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: w.url + "/mcp", MaxRetries: -1,
		HTTPClient: &http.Client{Transport: &headerTransport{token: token, header: header}}}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0"}, nil)
	cs, err := client.Connect(t.Context(), tr, &mcp.ClientSessionOptions{ProtocolVersion: protocol})
	if err != nil {
		t.Fatalf("connect (%s): %v", protocol, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callTool(t *testing.T, cs *mcp.ClientSession, params *mcp.CallToolParams) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("call %s: %v", params.Name, err)
	}
	return res
}

// scrape reads /metrics with token and returns the status and the text.
func (w *world) scrape(t *testing.T, token string) (int, string) {
	t.Helper()
	code, _, body := w.do(t, "GET", "/metrics", token, nil)
	return code, string(body)
}

// sample returns the value of the series written exactly as line (metric
// name and labels in Prometheus' order), or fails.
func sample(t *testing.T, text, series string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	t.Errorf("no series %s in /metrics", series)
	return ""
}

// TestMetricsAfterTraffic drives REST and MCP (both eras) and reads the
// counts back from /metrics, which itself needs metrics:read.
func TestMetricsAfterTraffic(t *testing.T) {
	w := newWorld(t)
	tok := w.token(t)

	// REST: two memories added, one read, three searches, a 404 on an
	// unknown path, a 401.
	var id string
	for _, c := range []string{"the release checklist lives in docs/release.md", "deploys go through the staging cluster first"} {
		code, _, body := w.do(t, "POST", "/api/v1/memories", tok, map[string]any{"content": c, "category": "workflow"})
		if code != http.StatusCreated {
			t.Fatalf("add: %d %s", code, body)
		}
		var m struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &m)
		id = m.ID
	}
	if code, _, _ := w.do(t, "GET", "/api/v1/memories/"+id, tok, nil); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	for range 3 {
		if code, _, body := w.do(t, "POST", "/api/v1/search", tok, map[string]any{"query": "release checklist"}); code != http.StatusOK {
			t.Fatalf("search: %d %s", code, body)
		}
	}
	if code, _, _ := w.do(t, "GET", "/no/such/path", tok, nil); code != http.StatusNotFound {
		t.Fatalf("unknown path: %d", code)
	}
	if code, _, _ := w.do(t, "GET", "/api/v1/memories", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}

	// MCP over a session: two searches and an add; stateless: one search;
	// a token without search:read is refused (the HTTP scope challenge).
	cs := w.connect(t, "2025-11-25", tok, nil)
	for range 2 {
		if res := callTool(t, cs, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "staging"}}); res.IsError {
			t.Fatalf("search_memory: %+v", res.Content)
		}
	}
	if res := callTool(t, cs, &mcp.CallToolParams{Name: "add_memories", Arguments: map[string]any{
		"memories": []map[string]any{{"content": "the on-call rota is in PagerDuty", "category": "workflow"}}}}); res.IsError {
		t.Fatalf("add_memories: %+v", res.Content)
	}
	// A tool error: get_memory of an id that does not exist.
	if res := callTool(t, cs, &mcp.CallToolParams{Name: "get_memory", Arguments: map[string]any{"id": "01J00000000000000000000000"}}); !res.IsError {
		t.Fatalf("get_memory of a missing id succeeded")
	}
	st := w.connect(t, "2026-07-28", tok, nil)
	if res := callTool(t, st, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "rota"}}); res.IsError {
		t.Fatalf("stateless search_memory: %+v", res.Content)
	}
	weak := w.connect(t, "2025-11-25", w.token(t, auth.ScopeMemoriesRead), nil)
	if _, err := weak.CallTool(t.Context(), &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "x"}}); err == nil {
		t.Fatal("search_memory without search:read was not refused")
	}
	// Over legacy SSE no HTTP status can carry the challenge: the tool
	// refuses the call itself, and the middleware counts it denied too.
	sse, err := mcp.NewClient(&mcp.Implementation{Name: "sse-client", Version: "1.0"}, nil).Connect(t.Context(),
		&mcp.SSEClientTransport{Endpoint: w.url + "/sse", HTTPClient: &http.Client{Transport: &headerTransport{token: w.token(t, auth.ScopeMemoriesRead)}}}, nil)
	if err != nil {
		t.Fatalf("connect over SSE: %v", err)
	}
	t.Cleanup(func() { sse.Close() })
	if res := callTool(t, sse, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "x"}}); !res.IsError {
		t.Fatal("search_memory over SSE without search:read succeeded")
	}

	// /metrics: 401 without a token, 403 without the scope, 200 with it.
	if code, _ := w.scrape(t, ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", code)
	}
	if code, _ := w.scrape(t, w.token(t, auth.ScopeMemoriesRead)); code != http.StatusForbidden {
		t.Errorf("/metrics without metrics:read: %d, want 403", code)
	}
	code, text := w.scrape(t, w.token(t, auth.ScopeMetricsRead))
	if code != http.StatusOK {
		t.Fatalf("/metrics with metrics:read: %d\n%s", code, text)
	}

	for series, want := range map[string]string{
		`codingbrain_http_requests_total{code="201",method="POST",route="POST /api/v1/memories"}`:        "2",
		`codingbrain_http_requests_total{code="200",method="GET",route="GET /api/v1/memories/{id}"}`:     "1",
		`codingbrain_http_requests_total{code="200",method="POST",route="POST /api/v1/search"}`:          "3",
		`codingbrain_http_requests_total{code="404",method="GET",route="unmatched"}`:                     "1",
		`codingbrain_http_requests_total{code="401",method="GET",route="GET /api/v1/memories"}`:          "1",
		`codingbrain_http_requests_total{code="401",method="GET",route="GET /metrics"}`:                  "1",
		`codingbrain_http_requests_total{code="403",method="GET",route="GET /metrics"}`:                  "1",
		`codingbrain_http_request_duration_seconds_count{method="POST",route="POST /api/v1/search"}`:     "3",
		`codingbrain_search_duration_seconds_count{channel="rest"}`:                                      "3",
		`codingbrain_search_duration_seconds_count{channel="mcp"}`:                                       "3",
		`codingbrain_mcp_tool_calls_total{outcome="ok",tool="search_memory"}`:                            "3",
		`codingbrain_mcp_tool_calls_total{outcome="ok",tool="add_memories"}`:                             "1",
		`codingbrain_mcp_tool_calls_total{outcome="error",tool="get_memory"}`:                            "1",
		`codingbrain_mcp_tool_calls_total{outcome="denied",tool="search_memory"}`:                        "2",
		`codingbrain_mcp_tool_call_duration_seconds_count{tool="search_memory"}`:                         "5",
		`codingbrain_auth_failures_total{reason="no_credentials"}`:                                       "2",
		`codingbrain_store_operation_duration_seconds_count{op="Create"}`:                                "3",
		`codingbrain_build_info{goversion="` + runtime.Version() + `",revision="abc123",version="test"}`: "1",
	} {
		if got := sample(t, text, series); got != "" && got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	// The search SLO reads the 50 ms bucket; the Go and process collectors
	// are registered.
	for _, want := range []string{`codingbrain_search_duration_seconds_bucket{channel="rest",le="0.05"}`, "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The scrape itself is in flight while it is written (and so are the
	// sessions' standalone GET streams).
	if got := sample(t, text, "codingbrain_http_requests_in_flight"); got == "" || got == "0" {
		t.Errorf("codingbrain_http_requests_in_flight = %q during a scrape", got)
	}
	// The MCP session opened above is counted while it is open. The
	// initialized notification was handled before the session's later
	// calls were answered.
	if got := sample(t, text, "codingbrain_mcp_sessions_active"); got == "" || got == "0" {
		t.Errorf("codingbrain_mcp_sessions_active = %q with sessions open", got)
	}
}

// logLines parses the JSON log lines with the given msg.
func logLines(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", sc.Text())
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

const (
	incomingTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingParent = "00f067aa0ba902b7"
	traceparent    = "00-" + incomingTrace + "-" + incomingParent + "-01"
)

// TestRequestLogLine checks the one line a REST request and an MCP tool
// call write, and that the bearer token appears nowhere in the log.
func TestRequestLogLine(t *testing.T) {
	w := newWorld(t)
	tok := w.token(t)
	code, reqID, body := w.do(t, "POST", "/api/v1/memories", tok, map[string]any{"content": "logs are JSON by default"},
		"traceparent", traceparent)
	if code != http.StatusCreated || reqID == "" {
		t.Fatalf("add: %d %q %s", code, reqID, body)
	}
	var line map[string]any
	for _, l := range logLines(t, w.logs.String(), "request") {
		if l["request_id"] == reqID {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no request line with request_id %s in:\n%s", reqID, w.logs.String())
	}
	for k, want := range map[string]any{
		"method": "POST", "route": "POST /api/v1/memories", "status": float64(201),
		"sub": "alice", "org_id": "acme", "trace_id": incomingTrace,
	} {
		if line[k] != want {
			t.Errorf("request line %s = %v, want %v", k, line[k], want)
		}
	}
	if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms = %v", line["duration_ms"])
	}
	if s, _ := line["span_id"].(string); len(s) != 16 || s == incomingParent {
		t.Errorf("span_id = %q: want the server span's own id", line["span_id"])
	}

	cs := w.connect(t, "2026-07-28", tok, map[string]string{"traceparent": traceparent, "X-Request-ID": "req-mcp-1"})
	callTool(t, cs, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "logs"}})
	calls := logLines(t, w.logs.String(), "mcp tool call")
	if len(calls) != 1 {
		t.Fatalf("%d mcp tool call lines, want 1:\n%s", len(calls), w.logs.String())
	}
	for k, want := range map[string]any{"tool": "search_memory", "outcome": "ok", "request_id": "req-mcp-1",
		"sub": "alice", "org_id": "acme", "trace_id": incomingTrace} {
		if calls[0][k] != want {
			t.Errorf("mcp tool call line %s = %v, want %v", k, calls[0][k], want)
		}
	}
	if _, ok := calls[0]["duration_ms"].(float64); !ok {
		t.Errorf("mcp tool call line has no duration_ms: %v", calls[0])
	}
	if strings.Contains(w.logs.String(), tok) {
		t.Error("the bearer token appears in the log")
	}
}

// TestLoggerRedacts: credentials under credential-named keys, Secret
// values and the configuration's secrets in any string never reach the
// output; trace ids come from the context.
func TestLoggerRedacts(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log := telemetry.NewLogger(&buf, telemetry.LogOptions{Format: format, Redact: func(s string) string {
			return strings.ReplaceAll(s, "hunter2", "xxxxx")
		}})
		exp := tracetest.NewInMemoryExporter()
		ctx, span := telemetry.Tracer(telemetry.NewTestTracing(exp).Provider).Start(t.Context(), "op")
		log.InfoContext(ctx, "connecting to postgres://u:hunter2@db/x",
			"token", "eyJhbGciOi.secret.token", "Authorization", "Bearer abc.def",
			"key", telemetry.Secret("sk-live-123"), "err", errors.New("dial postgres://u:hunter2@db: refused"),
			"token_id", "kid-1")
		span.End()
		out := buf.String()
		for _, secret := range []string{"eyJhbGciOi", "abc.def", "sk-live-123", "hunter2"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: %q leaked: %s", format, secret, out)
			}
		}
		for _, want := range []string{"kid-1", span.SpanContext().TraceID().String(), span.SpanContext().SpanID().String(), telemetry.Redacted} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q: %s", format, want, out)
			}
		}
	}
}

// spanNamed returns the spans with name, in end order.
func spanNamed(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func one(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	got := spanNamed(spans, name)
	if len(got) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		t.Fatalf("%d spans named %q, want 1; spans: %v", len(got), name, names)
	}
	return got[0]
}

func childOf(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.SpanContext.TraceID() != parent.SpanContext.TraceID() || child.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("%s (trace %s, parent %s) is not a child of %s (trace %s, span %s)", child.Name,
			child.SpanContext.TraceID(), child.Parent.SpanID(), parent.Name, parent.SpanContext.TraceID(), parent.SpanContext.SpanID())
	}
}

// TestTraceHTTPToolStore: an MCP tool call on a session, whose HTTP request
// carries a traceparent, makes one trace: the HTTP server span (child of
// the caller's span), the tool span under it, the store spans under that.
// Both protocol eras.
func TestTraceHTTPToolStore(t *testing.T) {
	for _, protocol := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(protocol, func(t *testing.T) {
			w := newWorld(t)
			cs := w.connect(t, protocol, w.token(t), map[string]string{"traceparent": traceparent})
			w.spans.Reset()
			callTool(t, cs, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "anything"}})
			tool := one(t, w.spans.GetSpans(), "mcp.tool search_memory")
			// The HTTP span ends when the handler returns, which may be
			// after the client has read the answer: wait for it.
			spans := w.waitSpans(t, func(ss tracetest.SpanStubs) bool {
				for _, s := range ss {
					if s.SpanContext.SpanID() == tool.Parent.SpanID() {
						return true
					}
				}
				return false
			})
			var httpSpan tracetest.SpanStub
			for _, s := range spanNamed(spans, "POST /mcp") {
				if s.SpanContext.SpanID() == tool.Parent.SpanID() {
					httpSpan = s
				}
			}
			if !httpSpan.SpanContext.IsValid() {
				t.Fatalf("the tool span's parent is not the HTTP span POST /mcp")
			}
			if httpSpan.SpanKind != trace.SpanKindServer || httpSpan.SpanContext.TraceID().String() != incomingTrace ||
				httpSpan.Parent.SpanID().String() != incomingParent || !httpSpan.Parent.IsRemote() {
				t.Errorf("HTTP span: kind %v, trace %s, parent %s (remote %v); want a server span continuing %s",
					httpSpan.SpanKind, httpSpan.SpanContext.TraceID(), httpSpan.Parent.SpanID(), httpSpan.Parent.IsRemote(), traceparent)
			}
			childOf(t, tool, httpSpan)
			childOf(t, one(t, spans, "store.Search"), tool)
		})
	}
}

// TestTraceMetaTraceparent: a traceparent in the call's params._meta (how
// MCP 2026-07-28 clients carry trace context) is the tool span's parent,
// over the one of the HTTP request.
func TestTraceMetaTraceparent(t *testing.T) {
	const (
		metaTrace  = "0af7651916cd43dd8448eb211c80319c"
		metaParent = "b7ad6b7169203331"
	)
	w := newWorld(t)
	cs := w.connect(t, "2026-07-28", w.token(t), map[string]string{"traceparent": traceparent})
	w.spans.Reset()
	callTool(t, cs, &mcp.CallToolParams{Name: "search_memory", Arguments: map[string]any{"query": "anything"},
		Meta: mcp.Meta{"traceparent": "00-" + metaTrace + "-" + metaParent + "-01"}})
	spans := w.spans.GetSpans()
	tool := one(t, spans, "mcp.tool search_memory")
	if tool.SpanContext.TraceID().String() != metaTrace || tool.Parent.SpanID().String() != metaParent {
		t.Errorf("tool span: trace %s parent %s, want %s %s (from _meta)", tool.SpanContext.TraceID(), tool.Parent.SpanID(), metaTrace, metaParent)
	}
	childOf(t, one(t, spans, "store.Search"), tool)
	// The tool call's log line names the _meta trace.
	calls := logLines(t, w.logs.String(), "mcp tool call")
	if len(calls) != 1 || calls[0]["trace_id"] != metaTrace || calls[0]["span_id"] != tool.SpanContext.SpanID().String() {
		t.Errorf("mcp tool call log lines: %v", calls)
	}
}
