package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/httpapi"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite golden files")

var testKey = bytes.Repeat([]byte("k"), 32)

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	api    *httpapi.Server
	store  *sqlite.Store
	tokens *auth.HS256
}

// clock is a deterministic, advancing clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	tokens := auth.NewHS256(testKey, "test-issuer", "test-aud", nil)
	svc := memory.NewService(store, memory.Options{Now: clk.Now})
	api := httpapi.New(svc, httpapi.Options{
		Verifier: tokens, MaxBodyBytes: 4096, Version: "test",
		ResourceMetadataURL: "http://example.test/.well-known/oauth-protected-resource",
		Resource:            "http://example.test/mcp",
		Checks:              []httpapi.Check{{Name: "store", Critical: true, Probe: store.Ping}},
		// TestOpenAPI sends one unauthenticated request per operation.
		AuthFailureLimit: httpapi.AuthFailureLimit{Rate: 1, Burst: 100},
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, api: api, store: store, tokens: tokens}
}

func (f *fixture) token(sub, org string, scopes ...string) string {
	f.t.Helper()
	if len(scopes) == 0 {
		scopes = auth.AllScopes
	}
	tok, err := f.tokens.Issue(auth.Principal{Subject: sub, OrgID: org, Scopes: scopes, Grants: []string{"org:" + org}}, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorOf returns the error envelope of a response.
func (r response) errorOf(t *testing.T) (code, field, msg string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Field, Message, RequestID string } `json:"error"`
	}
	r.decode(t, &e)
	if e.Error.Code == "" {
		t.Fatalf("no error envelope in %s", r.body)
	}
	return e.Error.Code, e.Error.Field, e.Error.Message
}

func (f *fixture) do(method, path, token string, body any, headers ...string) response {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (f *fixture) create(token string, in map[string]any) memory.Memory {
	f.t.Helper()
	r := f.do("POST", "/api/v1/memories", token, in)
	if r.status != http.StatusCreated {
		f.t.Fatalf("create: %d %s", r.status, r.body)
	}
	var m memory.Memory
	r.decode(f.t, &m)
	return m
}

func TestMemoryLifecycle(t *testing.T) {
	f := newFixture(t)
	tok := f.token("alice", "acme")

	r := f.do("POST", "/api/v1/memories", tok, map[string]any{
		"content": "We pin pgx to v5 because v4 is end of life", "category": "decision",
		"entity": "billing-service", "tags": map[string]any{"db": true}, "evidence": []string{"ADR-7"},
	})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var m memory.Memory
	r.decode(t, &m)
	if got := r.header.Get("Location"); got != "/api/v1/memories/"+m.ID {
		t.Errorf("Location = %q", got)
	}
	if m.Category != "decision" || m.AccessEntity != "user:alice" || m.State != "active" || m.CreatedBy != "alice" {
		t.Errorf("created memory = %+v", m)
	}
	if r.header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID in response")
	}

	// An exact duplicate (case and spacing aside) returns the same memory with 200.
	r = f.do("POST", "/api/v1/memories", tok, map[string]any{"content": "  we PIN pgx to v5 because v4 is end of life "})
	var dup memory.Memory
	r.decode(t, &dup)
	if r.status != http.StatusOK || dup.ID != m.ID {
		t.Errorf("duplicate: status %d id %s, want 200 %s", r.status, dup.ID, m.ID)
	}

	// An Idempotency-Key replays the first result.
	first := f.do("POST", "/api/v1/memories", tok, map[string]any{"content": "Runbooks live in docs/runbooks"}, "Idempotency-Key", "k-1")
	again := f.do("POST", "/api/v1/memories", tok, map[string]any{"content": "Runbooks live in docs/runbooks"}, "Idempotency-Key", "k-1")
	var m1, m2 memory.Memory
	first.decode(t, &m1)
	again.decode(t, &m2)
	if first.status != 201 || again.status != 200 || m1.ID != m2.ID {
		t.Errorf("idempotent replay: %d/%d ids %s/%s", first.status, again.status, m1.ID, m2.ID)
	}
	r = f.do("POST", "/api/v1/memories", tok, map[string]any{"content": "something else"}, "Idempotency-Key", "k-1")
	if code, _, _ := r.errorOf(t); r.status != http.StatusConflict || code != "conflict" {
		t.Errorf("key reused for other content: %d %s", r.status, r.body)
	}

	r = f.do("GET", "/api/v1/memories/"+m.ID, tok, nil)
	var got memory.Memory
	r.decode(t, &got)
	if r.status != 200 || got.Content != m.Content || got.Tags["db"] != true || got.Evidence[0] != "ADR-7" {
		t.Errorf("get: %d %+v", r.status, got)
	}

	r = f.do("PATCH", "/api/v1/memories/"+m.ID, tok, map[string]any{"content": "We pin pgx to v5.7", "category": "dependency"})
	r.decode(t, &got)
	if r.status != 200 || got.Content != "We pin pgx to v5.7" || got.Category != "dependency" {
		t.Errorf("patch: %d %s", r.status, r.body)
	}

	r = f.do("POST", "/api/v1/search", tok, map[string]any{"query": "pgx", "filters": map[string]any{"category": "dependency"}})
	var sr struct {
		Hits []memory.Hit `json:"hits"`
	}
	r.decode(t, &sr)
	if r.status != 200 || len(sr.Hits) != 1 || sr.Hits[0].Memory.ID != m.ID || sr.Hits[0].Score <= 0 {
		t.Errorf("search: %d %s", r.status, r.body)
	}

	for _, action := range []string{"pause", "restore", "archive"} {
		r = f.do("POST", "/api/v1/memories/"+m.ID+"/state", tok, map[string]any{"action": action})
		if r.status != 200 {
			t.Errorf("%s: %d %s", action, r.status, r.body)
		}
	}
	r = f.do("PATCH", "/api/v1/memories/"+m.ID, tok, map[string]any{"content": "x"})
	if r.status != http.StatusConflict {
		t.Errorf("patch archived: %d %s", r.status, r.body)
	}

	r = f.do("GET", "/api/v1/memories/"+m.ID+"/history", tok, nil)
	var h struct {
		History []memory.HistoryEntry `json:"history"`
	}
	r.decode(t, &h)
	wantActions := []string{"create", "update", "pause", "restore", "archive"}
	if len(h.History) != len(wantActions) {
		t.Fatalf("history has %d entries, want %d: %s", len(h.History), len(wantActions), r.body)
	}
	for i, e := range h.History {
		if e.Action != wantActions[i] || e.Actor != "alice" {
			t.Errorf("history[%d] = %s by %s", i, e.Action, e.Actor)
		}
	}
	if h.History[1].Before.Content != m.Content || h.History[1].After.Content != "We pin pgx to v5.7" {
		t.Errorf("update history before/after = %q/%q", h.History[1].Before.Content, h.History[1].After.Content)
	}

	r = f.do("DELETE", "/api/v1/memories/"+m.ID, tok, nil)
	r.decode(t, &got)
	if r.status != 200 || got.State != "deleted" {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r = f.do("GET", "/api/v1/memories/"+m.ID, tok, nil); r.status != http.StatusNotFound {
		t.Errorf("get after delete: %d", r.status)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	tok := f.token("alice", "acme")
	m := f.create(tok, map[string]any{"content": "CI runs on every push"})

	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
		code, field  string
	}{
		{"bad enum names field", "POST", "/api/v1/memories", tok, map[string]any{"content": "x", "category": "opinion"}, 400, "invalid_argument", "category"},
		{"blank content", "POST", "/api/v1/memories", tok, map[string]any{"content": "  "}, 400, "invalid_argument", "content"},
		{"unknown field", "POST", "/api/v1/memories", tok, map[string]any{"content": "x", "colour": "red"}, 400, "invalid_argument", "colour"},
		{"wrong type", "POST", "/api/v1/memories", tok, map[string]any{"content": 7}, 400, "invalid_argument", "content"},
		{"malformed json", "POST", "/api/v1/memories", tok, "{", 400, "invalid_argument", ""},
		{"empty body", "POST", "/api/v1/search", tok, "", 400, "invalid_argument", ""},
		{"blank query", "POST", "/api/v1/search", tok, map[string]any{"query": ""}, 400, "invalid_argument", "query"},
		{"bad filter", "POST", "/api/v1/search", tok, map[string]any{"query": "ci", "filters": map[string]any{"state": "gone"}}, 400, "invalid_argument", "filters.state"},
		{"bad list param", "GET", "/api/v1/memories?limit=abc", tok, nil, 400, "invalid_argument", "limit"},
		{"unknown list param", "GET", "/api/v1/memories?colour=red", tok, nil, 400, "invalid_argument", "colour"},
		{"bad action", "POST", "/api/v1/memories/" + m.ID + "/state", tok, map[string]any{"action": "explode"}, 400, "invalid_argument", "action"},
		{"no token", "GET", "/api/v1/memories", "", nil, 401, "unauthorized", ""},
		{"garbage token", "GET", "/api/v1/memories", "not-a-jwt", nil, 401, "unauthorized", ""},
		{"missing scope", "DELETE", "/api/v1/memories/" + m.ID, f.token("alice", "acme", auth.ScopeMemoriesRead), nil, 403, "insufficient_scope", ""},
		{"unknown id", "GET", "/api/v1/memories/01HZZZZZZZZZZZZZZZZZZZZZZZ", tok, nil, 404, "not_found", ""},
		{"other org", "GET", "/api/v1/memories/" + m.ID, f.token("alice", "globex"), nil, 404, "not_found", ""},
		{"other user", "GET", "/api/v1/memories/" + m.ID, f.token("bob", "acme"), nil, 404, "not_found", ""},
		{"illegal transition", "POST", "/api/v1/memories/" + m.ID + "/state", tok, map[string]any{"action": "restore"}, 409, "conflict", ""},
		{"too large", "POST", "/api/v1/memories", tok, map[string]any{"content": strings.Repeat("a", 5000)}, 413, "payload_too_large", ""},
		{"unknown route", "GET", "/api/v1/nothing", tok, nil, 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(tt.method, tt.path, tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			code, field, _ := r.errorOf(t)
			if code != tt.code || field != tt.field {
				t.Errorf("code/field = %q/%q, want %q/%q (%s)", code, field, tt.code, tt.field, r.body)
			}
		})
	}

	r := f.do("GET", "/api/v1/memories", "", nil)
	if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `resource_metadata="http://example.test/.well-known/oauth-protected-resource"`) {
		t.Errorf("WWW-Authenticate = %q", h)
	}
	r = f.do("POST", "/api/v1/memories", tok, map[string]any{"content": "x", "category": "opinion"})
	if _, _, msg := r.errorOf(t); !strings.Contains(msg, "decision") || !strings.Contains(msg, "glossary") {
		t.Errorf("enum error does not list the allowed values: %q", msg)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	f := newFixture(t)
	tok := f.token("alice", "acme")
	var ids []string
	for i := range 7 {
		cat := "decision"
		if i%2 == 1 {
			cat = "runbook"
		}
		ids = append(ids, f.create(tok, map[string]any{"content": "note number " + string(rune('a'+i)), "category": cat, "tags": map[string]any{"n": i}}).ID)
	}
	var seen []string
	cursor := ""
	for range 10 {
		r := f.do("GET", "/api/v1/memories?sort=created_at&limit=3&cursor="+cursor, tok, nil)
		var p memory.Page
		r.decode(t, &p)
		for _, m := range p.Memories {
			seen = append(seen, m.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Errorf("pages = %v, want %v", seen, ids)
	}
	r := f.do("GET", "/api/v1/memories?category=runbook", tok, nil)
	var p memory.Page
	r.decode(t, &p)
	if len(p.Memories) != 3 {
		t.Errorf("category filter: %d memories", len(p.Memories))
	}
	for _, m := range p.Memories {
		if m.Category != "runbook" {
			t.Errorf("filter let through %s", m.Category)
		}
	}
	var st memory.Stats
	f.do("GET", "/api/v1/stats", tok, nil).decode(t, &st)
	if st.Total != 7 || st.ByCategory["runbook"] != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/health/live", "/health/ready", "/health/deps", "/openapi.json", "/.well-known/oauth-protected-resource"} {
		if r := f.do("GET", path, "", nil); r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	var deps struct {
		Deps []struct {
			Name      string  `json:"name"`
			Status    string  `json:"status"`
			LatencyMS float64 `json:"latency_ms"`
		} `json:"deps"`
	}
	f.do("GET", "/health/deps", "", nil).decode(t, &deps)
	if len(deps.Deps) != 1 || deps.Deps[0].Name != "store" || deps.Deps[0].Status != "ok" {
		t.Errorf("deps = %+v", deps)
	}

	// A closed store makes readiness and deps fail once the cache expires.
	f.store.Close()
	waitFor(t, func() bool { return f.do("GET", "/health/ready", "", nil).status == http.StatusServiceUnavailable })
	if r := f.do("GET", "/health/deps", "", nil); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "unavailable") {
		t.Errorf("deps with closed store: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/health/live", "", nil); r.status != 200 {
		t.Errorf("live with closed store: %d", r.status)
	}
}

func TestDrainFailsReadiness(t *testing.T) {
	f := newFixture(t)
	f.api.Drain()
	if r := f.do("GET", "/health/ready", "", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("ready while draining: %d", r.status)
	}
}

// waitFor polls cond (health results are cached for a second).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOpenAPI pins the document in a golden file and checks it against the
// live mux: every documented operation is routed (it answers 401, not 404
// or 405), and every route is documented.
func TestOpenAPI(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/openapi.json", "", nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.decode(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			concrete := strings.ReplaceAll(path, "{id}", "01HZZZZZZZZZZZZZZZZZZZZZZZ")
			if got := f.do(strings.ToUpper(method), concrete, "", nil).status; got != http.StatusUnauthorized {
				t.Errorf("documented %s answers %d, want 401 (routed and authenticated)", key, got)
			}
		}
	}
	for _, rt := range httpapi.Routes() {
		if !documented[rt.Method+" "+rt.Path] {
			t.Errorf("route %s %s is not documented", rt.Method, rt.Path)
		}
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, r.body, "", "  "); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "openapi.golden.json")
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Errorf("openapi.json differs from %s; run go test ./internal/httpapi -run TestOpenAPI -update and review the diff", golden)
	}
}

// TestDepsHideErrorDetails: /health/deps needs no token, so a failing
// check shows the kind of failure, never the error text (which for a
// database names its host, user and database).
func TestDepsHideErrorDetails(t *testing.T) {
	const secret = "postgres://svc:hunter2@db.internal:5432/brain"
	api := httpapi.New(nil, httpapi.Options{Checks: []httpapi.Check{
		{Name: "db", Critical: true, Probe: func(context.Context) error { return errors.New("dial " + secret + ": connection refused") }},
	}})
	srv := httptest.NewServer(api)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/health/deps")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"error":"unreachable"`) {
		t.Errorf("deps: %d %s, want 503 with error unreachable", resp.StatusCode, body)
	}
	for _, leak := range []string{"hunter2", "db.internal", "svc", "brain"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("deps answer %s reveals %q", body, leak)
		}
	}
}
