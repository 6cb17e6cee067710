package mcpserver_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

const callWhoami = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`

// post sends a raw JSON-RPC message the way a Streamable HTTP client does.
func post(t *testing.T, url, token string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestMissingOrInvalidToken(t *testing.T) {
	env := newEnv(t, nil)
	wantMeta := `resource_metadata="` + env.url + `/.well-known/oauth-protected-resource"`
	other := auth.NewHS256([]byte("another key, another key, another"), "test-issuer", "test-audience", nil)
	forged, err := other.Issue(alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, method, path, token string }{
		{"mcp without token", http.MethodPost, "/mcp", ""},
		{"mcp with forged token", http.MethodPost, "/mcp", forged},
		{"sse without token", http.MethodGet, "/sse", ""},
		{"sse message without token", http.MethodPost, "/sse?sessionid=x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, env.url+tc.path, strings.NewReader(callWhoami))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d (%s), want 401", resp.StatusCode, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, wantMeta) {
				t.Errorf("WWW-Authenticate %q does not contain %s", got, wantMeta)
			}
			if strings.Contains(string(body), "signature") {
				t.Errorf("401 body %q reveals why the token failed", body)
			}
		})
	}
}

func TestStreamableSessionBoundToPrincipal(t *testing.T) {
	env := newEnv(t, nil)
	cs, _ := env.connect(t, sessions, env.token(t, alice))
	hdr := map[string]string{"Mcp-Session-Id": cs.ID(), "Mcp-Protocol-Version": "2025-11-25"}

	resp, body := post(t, env.url+"/mcp", env.token(t, bob), hdr, callWhoami)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob on alice's session: status %d (%s), want 403", resp.StatusCode, body)
	}
	resp, body = post(t, env.url+"/mcp", env.token(t, alice), hdr, callWhoami)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `\"sub\":\"alice\"`) {
		t.Fatalf("alice on her own session: status %d, body %s", resp.StatusCode, body)
	}
}

func TestSSESessionBoundToPrincipal(t *testing.T) {
	env := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.url+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+env.token(t, alice))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sse: status %d", resp.StatusCode)
	}
	endpoint := ""
	sc := bufio.NewScanner(resp.Body)
	for endpoint == "" && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			endpoint = data
		}
	}
	if !strings.HasPrefix(endpoint, "/sse?sessionid=") {
		t.Fatalf("endpoint event %q, want /sse?sessionid=…", endpoint)
	}
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	if r, body := post(t, env.url+endpoint, env.token(t, bob), nil, ping); r.StatusCode != http.StatusForbidden {
		t.Fatalf("bob posting into alice's SSE session: status %d (%s), want 403", r.StatusCode, body)
	}
	if r, body := post(t, env.url+endpoint, env.token(t, alice), nil, ping); r.StatusCode != http.StatusAccepted {
		t.Fatalf("alice posting into her SSE session: status %d (%s), want 202", r.StatusCode, body)
	}
}

func TestDNSRebindingRejected(t *testing.T) {
	env := newEnv(t, nil)
	for _, tc := range []struct{ method, path string }{{http.MethodPost, "/mcp"}, {http.MethodGet, "/sse"}} {
		req, _ := http.NewRequest(tc.method, env.url+tc.path, strings.NewReader(callWhoami))
		req.Host = "attacker.example"
		req.Header.Set("Authorization", "Bearer "+env.token(t, alice))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s with Host attacker.example: status %d, want 403", tc.method, tc.path, resp.StatusCode)
		}
	}
}

// TestMissingScope: over Streamable HTTP a call to a tool the token lacks
// the scope for is refused with HTTP 403 and an insufficient_scope
// challenge naming the scope (the MCP scope challenge), and the session
// goes on; over legacy SSE, where no status can carry it, the tool result
// is an error naming the scope.
func TestMissingScope(t *testing.T) {
	env := newEnv(t, nil)
	reader := auth.Principal{Subject: "rita", OrgID: "acme", Scopes: []string{auth.ScopeMemoriesRead}}
	token := env.token(t, reader)
	for _, kind := range []string{sessions, stateless} {
		t.Run(kind, func(t *testing.T) {
			cs, _ := env.connect(t, kind, token)
			for tool, scope := range map[string]string{"add_memories": "memories:write", "delete_memories": "memories:delete", "search_memory": "search:read"} {
				_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
				if err == nil || !strings.Contains(err.Error(), "missing scope "+scope) {
					t.Errorf("%s: err = %v, want a refusal naming %s", tool, err, scope)
				}
			}
			var page mcpserver.ListOutput
			mustOK(t, "list_memories", call(t, cs, "list_memories", nil, &page))
			var me mcpserver.WhoamiOutput
			if mustOK(t, "whoami", call(t, cs, "whoami", nil, &me)); me.Sub != "rita" {
				t.Errorf("whoami: got %+v", me)
			}
		})
	}

	hdr := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "delete_memories"}
	resp, body := post(t, env.url+"/mcp", token, hdr, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_memories","arguments":{"ids":["x"]},`+
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`)
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(challenge, `error="insufficient_scope"`) ||
		!strings.Contains(challenge, `scope="memories:delete"`) || !strings.Contains(challenge, "resource_metadata=") || !strings.Contains(body, `"id":3`) {
		t.Errorf("raw call without scope: %d %q %s", resp.StatusCode, challenge, body)
	}

	cs, _ := env.connect(t, legacySSE, token)
	mustFail(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": "x"}}}, nil), "missing scope memories:write")
	mustFail(t, "update_memory", call(t, cs, "update_memory", map[string]any{"id": "01J", "content": "y"}, nil), "memories:write")
}

func TestValidationErrors(t *testing.T) {
	env := newEnv(t, nil)
	cs, _ := env.connect(t, sessions, env.token(t, alice))

	mustFail(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": "   "}}}, nil),
		"memories[0]", "invalid content", "required")
	mustFail(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": "x", "category": "banana"}}}, nil),
		"category", "decision")
	mustFail(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": "x", "scope": "team", "access_entity": "project:acme/api"}}}, nil),
		"access_entity")
	mustFail(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{}}, nil), "memories")
	mustFail(t, "search_memory", call(t, cs, "search_memory", map[string]any{"query": "x", "filters": map[string]any{"created_after": "last tuesday"}}, nil),
		"filters.created_after", "RFC 3339")
	mustFail(t, "list_memories", call(t, cs, "list_memories", map[string]any{"limit": 1000}, nil), "limit", "200")
	mustFail(t, "update_memory", call(t, cs, "update_memory", map[string]any{"id": "01J"}, nil), "at least one field")

	// One bad memory among good ones: the good ones are stored, the result
	// is an error that names the bad one and lists the stored ones.
	res := call(t, cs, "add_memories", map[string]any{"memories": []any{
		map[string]any{"content": "Use pnpm, not npm, in the web repo.", "category": "convention"},
		map[string]any{"content": "bad tags", "tags": map[string]any{"no spaces allowed": true}},
	}}, nil)
	mustFail(t, "add_memories", res, "memories[1]", "tags", "memories[0] created")
	var page mcpserver.ListOutput
	mustOK(t, "list_memories", call(t, cs, "list_memories", nil, &page))
	if len(page.Memories) != 1 || page.Memories[0].Content != "Use pnpm, not npm, in the web repo." {
		t.Errorf("after a partly failed add: got %+v, want the good memory only", page.Memories)
	}
}

func TestTenantIsolation(t *testing.T) {
	env := newEnv(t, nil)
	a, _ := env.connect(t, stateless, env.token(t, alice))
	var added mcpserver.AddMemoriesOutput
	mustOK(t, "add_memories", call(t, a, "add_memories", map[string]any{"memories": []any{
		map[string]any{"content": "The web team reviews every migration in #db-review.", "scope": "team"},
		map[string]any{"content": "Alice keeps her scratch notes in notes.md.", "scope": "user"},
	}}, &added))
	team, private := added.Results[0].ID, added.Results[1].ID

	// Bob shares the team grant: he sees the team memory, not Alice's own.
	b, _ := env.connect(t, stateless, env.token(t, bob))
	var got mcpserver.MemoryView
	mustOK(t, "get_memory", call(t, b, "get_memory", map[string]any{"id": team}, &got))
	if got.AccessEntity != "team:acme/web" {
		t.Errorf("bob get team memory: got %+v", got)
	}
	mustFail(t, "get_memory", call(t, b, "get_memory", map[string]any{"id": private}, nil), "not found")

	// Eve is in another org, with every scope and an org-wide grant there.
	e, _ := env.connect(t, sessions, env.token(t, eve))
	for _, id := range []string{team, private} {
		mustFail(t, "get_memory", call(t, e, "get_memory", map[string]any{"id": id}, nil), "not found")
		mustFail(t, "update_memory", call(t, e, "update_memory", map[string]any{"id": id, "content": "pwned"}, nil), "not found")
		mustFail(t, "memory_history", call(t, e, "memory_history", map[string]any{"id": id}, nil), "not found")
	}
	mustFail(t, "delete_memories", call(t, e, "delete_memories", map[string]any{"ids": []string{team}}, nil), "not found")
	var found mcpserver.SearchOutput
	mustOK(t, "search_memory", call(t, e, "search_memory", map[string]any{"query": "migration review notes"}, &found))
	if len(found.Results) != 0 {
		t.Errorf("eve search: got %+v, want nothing from another org", found.Results)
	}
	mustOK(t, "get_memory", call(t, a, "get_memory", map[string]any{"id": team}, &got))
	if got.Content != "The web team reviews every migration in #db-review." {
		t.Errorf("after eve's attempts: got %+v", got)
	}
}

func TestDevPrincipal(t *testing.T) {
	dev := auth.Principal{Subject: "dev", OrgID: "local", Scopes: auth.AllScopes, App: "dev"}
	env := newEnv(t, &dev)
	cs, _ := env.connect(t, stateless, "")
	var me mcpserver.WhoamiOutput
	mustOK(t, "whoami", call(t, cs, "whoami", nil, &me))
	if me.Sub != "dev" || me.OrgID != "local" || me.App != "dev" {
		t.Errorf("whoami without token in dev mode: got %+v", me)
	}
	// A token, when given, is still verified.
	if resp, body := post(t, env.url+"/mcp", "garbage", nil, callWhoami); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad token in dev mode: status %d (%s), want 401", resp.StatusCode, body)
	}
}

func TestServeStdio(t *testing.T) {
	env := newEnvService(t)
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	p := auth.Principal{Subject: "sam", OrgID: "acme", Scopes: auth.AllScopes}
	go func() { done <- env.ServeStdio(ctx, p, sr, sw) }()

	client := mcp.NewClient(&mcp.Implementation{Name: "editor", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: cr, Writer: cw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var added mcpserver.AddMemoriesOutput
	mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": "Releases are cut on Tuesdays."}}}, &added))
	var got mcpserver.MemoryView
	mustOK(t, "get_memory", call(t, cs, "get_memory", map[string]any{"id": added.Results[0].ID}, &got))
	if got.CreatedBy != "sam" || got.App != "editor" {
		t.Errorf("stdio get: got %+v, want created_by sam and app editor (the client's name)", got)
	}
	cs.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeStdio after the client closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStdio did not return after the client closed")
	}
}

func TestBodyLimit(t *testing.T) {
	tokens := auth.NewHS256([]byte("0123456789abcdef0123456789abcdef"), "test-issuer", "test-audience", nil)
	srv := mcpserver.New(newService(t), mcpserver.Options{Verifier: tokens, MaxBodyBytes: 1024})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	tok, err := tokens.Issue(alice, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	big := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"pad":"` + strings.Repeat("x", 2048) + `"}}`
	if resp, body := post(t, ts.URL, tok, nil, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2 KiB body with a 1 KiB limit: status %d (%s), want 413", resp.StatusCode, body)
	}
}

// downKeys is a key store that cannot be reached.
type downKeys struct{ auth.KeyStore }

func (downKeys) APIKeyByID(context.Context, string) (auth.APIKey, error) {
	return auth.APIKey{}, fmt.Errorf("read api key: %w", memory.ErrUnavailable)
}

// TestCredentialStoreDown: when API keys cannot be read the answer is 503
// with Retry-After — retry later — not 401 (the key may be fine) or 500.
func TestCredentialStoreDown(t *testing.T) {
	srv := mcpserver.New(newService(t), mcpserver.Options{Verifier: auth.Verifiers{APIKeys: auth.NewAPIKeys(downKeys{}, auth.APIKeysOptions{})}})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	resp, body := post(t, ts.URL, "cb_abcdefghijkl_"+strings.Repeat("a", 52), nil, callWhoami)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d Retry-After %q (%s), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}
