package mcpserver_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// testEnv is a real server: SQLite store, memory service, HS256 tokens, and
// the MCP handlers mounted at /mcp and /sse of an httptest server.
type testEnv struct {
	url    string
	tokens *auth.HS256
	store  *sqlite.Store
}

var (
	alice = auth.Principal{Subject: "alice", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"team:acme/web"}}
	bob   = auth.Principal{Subject: "bob", OrgID: "acme", Scopes: auth.AllScopes, Grants: []string{"team:acme/web"}}
	eve   = auth.Principal{Subject: "eve", OrgID: "globex", Scopes: auth.AllScopes, Grants: []string{"org:globex"}}
)

func newService(t *testing.T) *memory.Service {
	t.Helper()
	svc, _ := newStore(t)
	return svc
}

func newStore(t *testing.T) (*memory.Service, *sqlite.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "codingbrain.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return memory.NewService(store, memory.Options{}), store
}

// newEnvService returns a server for stdio, without HTTP.
func newEnvService(t *testing.T) *mcpserver.Server {
	return mcpserver.New(newService(t), mcpserver.Options{Version: "test"})
}

func newEnv(t *testing.T, dev *auth.Principal) *testEnv {
	t.Helper()
	svc, store := newStore(t)
	tokens := auth.NewHS256([]byte("0123456789abcdef0123456789abcdef"), "test-issuer", "test-audience", nil)
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	srv := mcpserver.New(svc, mcpserver.Options{
		Verifier: tokens, DevPrincipal: dev, Version: "test", Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		ResourceMetadataURL: ts.URL + "/.well-known/oauth-protected-resource",
	})
	mux.Handle("/mcp", srv.Handler())
	mux.Handle("/sse", srv.SSEHandler())
	return &testEnv{url: ts.URL, tokens: tokens, store: store}
}

func (e *testEnv) token(t *testing.T, p auth.Principal) string {
	t.Helper()
	tok, err := e.tokens.Issue(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// recorder adds the bearer token to every request and remembers what the
// client sent, so tests can see which protocol era was spoken.
type recorder struct {
	token string
	mu    sync.Mutex
	sent  []sentRequest
}

type sentRequest struct{ method, sessionID, version, mcpMethod string }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	r.mu.Lock()
	r.sent = append(r.sent, sentRequest{req.Method, req.Header.Get("Mcp-Session-Id"), req.Header.Get("Mcp-Protocol-Version"), req.Header.Get("Mcp-Method")})
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) requests() []sentRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// Transports the tests run over.
const (
	sessions  = "streamable-2025-11-25"
	stateless = "streamable-2026-07-28"
	legacySSE = "sse-2024-11-05"
)

func (e *testEnv) connect(t *testing.T, kind, token string) (*mcp.ClientSession, *recorder) {
	t.Helper()
	rec := &recorder{token: token}
	hc := &http.Client{Transport: rec}
	var (
		tr   mcp.Transport
		opts *mcp.ClientSessionOptions
	)
	switch kind {
	case sessions:
		tr = &mcp.StreamableClientTransport{Endpoint: e.url + "/mcp", HTTPClient: hc, MaxRetries: -1}
		opts = &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"}
	case stateless:
		tr = &mcp.StreamableClientTransport{Endpoint: e.url + "/mcp", HTTPClient: hc, MaxRetries: -1}
		opts = &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"}
	case legacySSE:
		tr = &mcp.SSEClientTransport{Endpoint: e.url + "/sse", HTTPClient: hc}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0"}, nil)
	// Not a timeout context: the SSE client's stream lives on this one.
	cs, err := client.Connect(t.Context(), tr, opts)
	if err != nil {
		t.Fatalf("connect over %s: %v", kind, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, rec
}

// call calls a tool and decodes its structured result into out (if not
// nil). It fails the test on a protocol error, not on a tool error.
func call(t *testing.T, cs *mcp.ClientSession, tool string, args any, out any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	if out != nil && !res.IsError {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("decode %s result %s: %v", tool, b, err)
		}
	}
	return res
}

// mustOK fails the test when res is a tool error.
func mustOK(t *testing.T, tool string, res *mcp.CallToolResult) {
	t.Helper()
	if res.IsError {
		t.Fatalf("%s: unexpected tool error: %s", tool, text(res))
	}
}

// mustFail fails the test unless res is a tool error whose text holds every
// one of wants.
func mustFail(t *testing.T, tool string, res *mcp.CallToolResult, wants ...string) {
	t.Helper()
	if !res.IsError {
		t.Fatalf("%s: want a tool error, got %s", tool, text(res))
	}
	for _, w := range wants {
		if !strings.Contains(text(res), w) {
			t.Errorf("%s: error %q does not mention %q", tool, text(res), w)
		}
	}
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func TestToolLifecycle(t *testing.T) {
	for _, kind := range []string{sessions, stateless, legacySSE} {
		t.Run(kind, func(t *testing.T) {
			env := newEnv(t, nil)
			cs, rec := env.connect(t, kind, env.token(t, alice))

			checkEra(t, kind, cs, rec)
			checkTools(t, cs)

			content := "The billing service is deployed with blue-green releases through Argo Rollouts."
			var added mcpserver.AddMemoriesOutput
			mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{
				map[string]any{"content": content, "category": "workflow", "entity": "billing", "evidence": []string{"https://git.example/acme/billing/pull/7"}},
			}}, &added))
			if len(added.Results) != 1 || added.Results[0].Status != "created" || added.Results[0].ID == "" {
				t.Fatalf("add_memories: got %+v", added)
			}
			id := added.Results[0].ID

			var again mcpserver.AddMemoriesOutput
			mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": "  the billing service is deployed with blue-green releases through argo rollouts. "}}}, &again))
			if again.Results[0].Status != "duplicate" || again.Results[0].ID != id {
				t.Errorf("adding the same content again: got %+v, want duplicate of %s", again.Results[0], id)
			}

			var found mcpserver.SearchOutput
			mustOK(t, "search_memory", call(t, cs, "search_memory", map[string]any{"query": "how is billing deployed blue-green"}, &found))
			if len(found.Results) == 0 || found.Results[0].ID != id || found.Results[0].Content != content {
				t.Fatalf("search_memory: got %+v, want %s first", found.Results, id)
			}
			if r := found.Results[0]; r.Category != "workflow" || r.Entity != "billing" || r.Score <= 0 || r.Scope != "" || r.CreatedAt != nil {
				t.Errorf("compact search result: got %+v, want category, entity, score and nothing else", r)
			}
			var verbose mcpserver.SearchOutput
			mustOK(t, "search_memory", call(t, cs, "search_memory", map[string]any{"query": "blue-green", "detail": "full", "filters": map[string]any{"category": []string{"workflow"}}}, &verbose))
			if len(verbose.Results) != 1 || verbose.Results[0].Scope != "user" || verbose.Results[0].AccessEntity != "user:alice" || verbose.Results[0].App != "test-client" {
				t.Errorf("verbose search: got %+v, want scope user, access_entity user:alice, app test-client", verbose.Results)
			}

			newContent := "The billing service is deployed with canary releases through Argo Rollouts."
			var updated mcpserver.MemoryView
			mustOK(t, "update_memory", call(t, cs, "update_memory", map[string]any{"id": id, "content": newContent}, &updated))
			if updated.Content != newContent || updated.Category != "workflow" {
				t.Errorf("update_memory: got %+v", updated)
			}

			var got mcpserver.MemoryView
			mustOK(t, "get_memory", call(t, cs, "get_memory", map[string]any{"id": id}, &got))
			if got.Content != newContent || got.State != "active" || len(got.Evidence) != 1 || got.CreatedBy != "alice" {
				t.Errorf("get_memory: got %+v", got)
			}

			var listed mcpserver.ListOutput
			mustOK(t, "list_memories", call(t, cs, "list_memories", map[string]any{"filters": map[string]any{"entity": "billing"}}, &listed))
			if len(listed.Memories) != 1 || listed.Memories[0].ID != id {
				t.Errorf("list_memories: got %+v", listed)
			}

			var hist mcpserver.HistoryOutput
			mustOK(t, "memory_history", call(t, cs, "memory_history", map[string]any{"id": id}, &hist))
			if len(hist.Entries) != 2 {
				t.Fatalf("memory_history: got %d entries %+v, want 2", len(hist.Entries), hist.Entries)
			}
			if h := hist.Entries[0]; h.Action != "create" || h.Actor != "alice" || h.Content != content {
				t.Errorf("history[0]: got %+v", h)
			}
			if h := hist.Entries[1]; h.Action != "update" || h.Actor != "alice" || h.Content != newContent {
				t.Errorf("history[1]: got %+v", h)
			}

			var deleted mcpserver.DeleteOutput
			mustOK(t, "delete_memories", call(t, cs, "delete_memories", map[string]any{"ids": []string{id}}, &deleted))
			if len(deleted.Results) != 1 || deleted.Results[0].Status != "deleted" {
				t.Errorf("delete_memories: got %+v", deleted)
			}
			mustFail(t, "get_memory", call(t, cs, "get_memory", map[string]any{"id": id}, nil), "not found", id)

			var after mcpserver.SearchOutput
			mustOK(t, "search_memory", call(t, cs, "search_memory", map[string]any{"query": "billing canary"}, &after))
			if len(after.Results) != 0 {
				t.Errorf("search after delete: got %+v, want nothing", after.Results)
			}

			// Reads through MCP leave access-log rows: two searches, a
			// get and a list returned the memory before it was deleted.
			if n, err := env.store.CountAccessLog(context.Background(), "acme"); err != nil || n < 4 {
				t.Errorf("access log: %d rows (%v), want at least 4", n, err)
			}

			var me mcpserver.WhoamiOutput
			mustOK(t, "whoami", call(t, cs, "whoami", nil, &me))
			if me.Sub != "alice" || me.OrgID != "acme" || !slices.Contains(me.Scopes, auth.ScopeMemoriesWrite) || !slices.Equal(me.Grants, alice.Grants) {
				t.Errorf("whoami: got %+v", me)
			}
		})
	}
}

// checkEra asserts the protocol version negotiated and that the requests
// the client sent match that era: sessions and Mcp-Session-Id for
// 2025-11-25, none for 2026-07-28.
func checkEra(t *testing.T, kind string, cs *mcp.ClientSession, rec *recorder) {
	t.Helper()
	got := cs.InitializeResult().ProtocolVersion
	switch kind {
	case sessions:
		if got != "2025-11-25" || cs.ID() == "" {
			t.Fatalf("negotiated %q with session %q; want 2025-11-25 with a session", got, cs.ID())
		}
	case stateless:
		if got != "2026-07-28" || cs.ID() != "" {
			t.Fatalf("negotiated %q with session %q; want 2026-07-28 without a session", got, cs.ID())
		}
	case legacySSE:
		if got != "2025-11-25" && got != "2024-11-05" {
			t.Fatalf("negotiated %q over SSE", got)
		}
		return
	}
	// Make one more call so that the recorder sees a post-handshake request.
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	last := reqs[len(reqs)-1]
	for last.method != http.MethodPost {
		reqs = reqs[:len(reqs)-1]
		last = reqs[len(reqs)-1]
	}
	switch kind {
	case sessions:
		if reqs[0].sessionID != "" || last.sessionID == "" || last.version != "2025-11-25" {
			t.Errorf("2025-11-25 client sent %+v", reqs)
		}
	case stateless:
		if reqs[0].mcpMethod != "server/discover" {
			t.Errorf("2026-07-28 client began with %+v, want server/discover", reqs[0])
		}
		for _, r := range reqs {
			if r.sessionID != "" || r.version != "2026-07-28" || r.method != http.MethodPost {
				t.Errorf("2026-07-28 client sent %+v", r)
			}
		}
	}
}

func checkTools(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tool := range res.Tools {
		tools[tool.Name] = tool
	}
	want := []string{"add_memories", "aggregate", "delete_memories", "entity_network", "get_memory", "list_memories", "memory_history",
		"path_between_entities", "relate", "related_memories", "search_memory", "tag_cooccurrence", "update_memory", "whoami"}
	var names []string
	for n := range tools {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("tools: got %v, want %v", names, want)
	}
	for name, want := range map[string]struct{ readOnly, destructive, idempotent bool }{
		"add_memories":    {false, false, true},
		"search_memory":   {true, false, true},
		"list_memories":   {true, false, true},
		"get_memory":      {true, false, true},
		"update_memory":   {false, true, true},
		"delete_memories": {false, true, true},
		"memory_history":  {true, false, true},
		"whoami":          {true, false, true},
		// graphtools.go
		"related_memories":      {true, false, true},
		"entity_network":        {true, false, true},
		"path_between_entities": {true, false, true},
		"aggregate":             {true, false, true},
		"tag_cooccurrence":      {true, false, true},
		"relate":                {false, false, true},
	} {
		a := tools[name].Annotations
		if a == nil || a.ReadOnlyHint != want.readOnly || a.DestructiveHint == nil || *a.DestructiveHint != want.destructive || a.IdempotentHint != want.idempotent {
			t.Errorf("%s annotations: got %+v, want %+v", name, a, want)
		}
		if len(tools[name].Description) < 80 {
			t.Errorf("%s: description %q is too short to tell a model when to use it", name, tools[name].Description)
		}
		if tools[name].OutputSchema == nil {
			t.Errorf("%s: no output schema", name)
		}
	}
	schema, _ := json.Marshal(tools["add_memories"].InputSchema)
	var s struct {
		Required   []string `json:"required"`
		Properties struct {
			Memories struct {
				Items struct {
					Required   []string `json:"required"`
					Properties map[string]struct {
						Enum        []string `json:"enum"`
						Description string   `json:"description"`
					} `json:"properties"`
				} `json:"items"`
			} `json:"memories"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatal(err)
	}
	item := s.Properties.Memories.Items
	if !slices.Contains(s.Required, "memories") || !slices.Equal(item.Required, []string{"content"}) {
		t.Errorf("add_memories schema: required %v / item required %v; want memories / content", s.Required, item.Required)
	}
	if item.Properties["content"].Description == "" || !slices.Contains(item.Properties["category"].Enum, "decision") || !slices.Contains(item.Properties["scope"].Enum, "team") {
		t.Errorf("add_memories item schema lacks content description or enums: %s", schema)
	}
}
