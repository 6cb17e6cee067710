package mcpserver_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/audit"
	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// newAuditEnv is newEnv with an audit recorder on the store, given to the
// MCP server and the memory service as serve wires them.
func newAuditEnv(t *testing.T) *testEnv {
	t.Helper()
	_, store := newStore(t)
	rec := audit.NewRecorder(store, audit.RecorderOptions{})
	svc := memory.NewService(store, memory.Options{Audit: rec})
	tokens := auth.NewHS256([]byte("0123456789abcdef0123456789abcdef"), "test-issuer", "test-audience", nil)
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	srv := mcpserver.New(svc, mcpserver.Options{
		Verifier: tokens, Version: "test", Audit: rec,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	})
	mux.Handle("/mcp", srv.Handler())
	mux.Handle("/sse", srv.SSEHandler())
	return &testEnv{url: ts.URL, tokens: tokens, store: store}
}

func (e *testEnv) auditChain(t *testing.T) []audit.Record {
	t.Helper()
	recs, err := e.store.AuditChain(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// tokenSwap sends the token it currently holds with every request, so a
// test can hand a live SDK client session another principal's token.
type tokenSwap struct{ token atomic.Pointer[string] }

func (s *tokenSwap) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+*s.token.Load())
	return http.DefaultTransport.RoundTrip(req)
}

// TestAuditSessionHijack: a Streamable HTTP session opened by alice through
// the SDK client, then used by the same client with bob's token, is
// refused with 403 and leaves an mcp.session_hijack record that names bob
// and alice's session without its id.
func TestAuditSessionHijack(t *testing.T) {
	env := newAuditEnv(t)
	aliceTok, bobTok := env.token(t, alice), env.token(t, bob)
	tr := &tokenSwap{}
	tr.token.Store(&aliceTok)
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: env.url + "/mcp", HTTPClient: &http.Client{Transport: tr}, MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	sid := cs.ID()
	if sid == "" {
		t.Fatal("no session id")
	}
	var me mcpserver.WhoamiOutput
	mustOK(t, "whoami as alice", call(t, cs, "whoami", nil, &me))
	before := len(env.auditChain(t))

	tr.token.Store(&bobTok)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"}); err == nil || !strings.Contains(err.Error(), "403") && !strings.Contains(strings.ToLower(err.Error()), "forbidden") {
		t.Fatalf("bob on alice's session: %v, want a 403", err)
	}
	// The client may follow up with more requests on the session (it ends
	// a session it can no longer use with DELETE); each is refused and
	// recorded.
	recs := env.auditChain(t)[before:]
	if len(recs) == 0 {
		t.Fatal("no audit record after the hijack attempt")
	}
	for _, r := range recs {
		if r.Action != audit.ActionSessionHijack || r.Outcome != audit.OutcomeDenied || r.Actor != "bob" || r.OrgID != "acme" ||
			!strings.HasPrefix(r.Target, "mcp_session:sha256:") || r.RemoteAddr != "127.0.0.1" ||
			r.Detail["session_owner"] != "acme/alice" || r.Detail["actor_org"] != "acme" || r.Detail["transport"] != "streamable_http" {
			t.Errorf("hijack record %+v", r)
		}
		if strings.Contains(fmt.Sprint(r), sid) || strings.Contains(fmt.Sprint(r), bobTok) {
			t.Error("the audit record holds the session id or the token")
		}
	}

	// Alice's session was not ended by bob and still works for her.
	hdr := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	if resp, body := post(t, env.url+"/mcp", aliceTok, hdr, callWhoami); resp.StatusCode != http.StatusOK || !strings.Contains(body, `\"sub\":\"alice\"`) {
		t.Errorf("alice on her session after the attempt: %d %s", resp.StatusCode, body)
	}
	if rep, err := audit.Verify(context.Background(), env.store); err != nil || !rep.OK() {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

func TestAuditSSESessionHijack(t *testing.T) {
	env := newAuditEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.url+"/sse", nil)
	req.Header.Set("Authorization", "Bearer "+env.token(t, alice))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	endpoint := ""
	for sc := bufio.NewScanner(resp.Body); endpoint == "" && sc.Scan(); {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			endpoint = data
		}
	}
	if r, body := post(t, env.url+endpoint, env.token(t, eve), nil, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); r.StatusCode != http.StatusForbidden {
		t.Fatalf("eve posting into alice's SSE session: %d %s", r.StatusCode, body)
	}
	recs := env.auditChain(t)
	if len(recs) != 1 {
		t.Fatalf("audit records %+v", recs)
	}
	if r := recs[0]; r.Action != audit.ActionSessionHijack || r.Actor != "eve" || r.OrgID != "acme" ||
		r.Detail["actor_org"] != "globex" || r.Detail["transport"] != "sse" {
		t.Errorf("sse hijack record %+v", r)
	}
}

func TestAuditMCPRefusalsAndDeletes(t *testing.T) {
	env := newAuditEnv(t)

	// 401s.
	if resp, _ := post(t, env.url+"/mcp", "", nil, callWhoami); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	if resp, _ := post(t, env.url+"/mcp", "not-a-jwt", nil, callWhoami); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
	recs := env.auditChain(t)
	if len(recs) != 2 {
		t.Fatalf("audit records after two 401s: %+v", recs)
	}
	for i, reason := range []string{"no_credentials", "invalid_token"} {
		if r := recs[i]; r.Action != audit.ActionAuthFailure || r.Actor != audit.ActorAnonymous || r.OrgID != "" ||
			r.Target != "POST /mcp" || r.Detail["reason"] != reason || r.Detail["channel"] != "mcp" {
			t.Errorf("401 record %d: %+v", i, r)
		}
	}

	// A missing scope: refused with HTTP 403 on Streamable HTTP, and inside
	// the tool on legacy SSE.
	reader := auth.Principal{Subject: "rita", OrgID: "acme", Scopes: []string{auth.ScopeMemoriesRead}}
	for _, kind := range []string{stateless, legacySSE} {
		cs, _ := env.connect(t, kind, env.token(t, reader))
		before := len(env.auditChain(t))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "delete_memories", Arguments: map[string]any{"ids": []string{"01J"}}})
		cancel()
		if err == nil && !res.IsError {
			t.Fatalf("%s: delete_memories without memories:delete succeeded", kind)
		}
		recs := env.auditChain(t)[before:]
		if len(recs) != 1 {
			t.Fatalf("%s: %d audit records for a missing scope: %+v", kind, len(recs), recs)
		}
		if r := recs[0]; r.Action != audit.ActionAccessForbidden || r.Actor != "rita" || r.OrgID != "acme" ||
			r.Target != "mcp_tool:delete_memories" || r.Detail["missing_scope"] != auth.ScopeMemoriesDelete {
			t.Errorf("%s: scope record %+v", kind, r)
		}
	}

	// Deletions through MCP are recorded by the service.
	cs, _ := env.connect(t, stateless, env.token(t, alice))
	var added mcpserver.AddMemoriesOutput
	mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{
		map[string]any{"content": "The web team deploys on Tuesdays", "scope": "team"}}}, &added))
	id := added.Results[0].ID
	before := len(env.auditChain(t))
	mustOK(t, "delete_memories", call(t, cs, "delete_memories", map[string]any{"ids": []string{id}}, nil))
	recs = env.auditChain(t)[before:]
	if len(recs) != 1 || recs[0].Action != audit.ActionMemoryDelete || recs[0].Target != "memory:"+id || recs[0].Actor != "alice" || recs[0].OrgID != "acme" {
		t.Errorf("delete records %+v", recs)
	}
	if rep, err := audit.Verify(context.Background(), env.store); err != nil || !rep.OK() {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}
