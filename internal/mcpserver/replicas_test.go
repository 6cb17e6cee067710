package mcpserver_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/kv"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/redistest"
)

// replicas are two MCP servers — separate processes in production — on one
// store and one shared session state, each behind its own listener.
type replicas struct {
	urls   [2]string
	tokens *auth.HS256
}

func newReplicas(t *testing.T, shared kv.Store) *replicas {
	t.Helper()
	svc, _ := newStore(t)
	tokens := auth.NewHS256([]byte("0123456789abcdef0123456789abcdef"), "test-issuer", "test-audience", nil)
	r := &replicas{tokens: tokens}
	for i := range r.urls {
		srv := mcpserver.New(svc, mcpserver.Options{
			Verifier: tokens, Version: "test", Sessions: shared,
			Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		r.urls[i] = ts.URL
	}
	return r
}

func (r *replicas) token(t *testing.T, p auth.Principal) string {
	t.Helper()
	tok, err := r.tokens.Issue(p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// alternating is a load balancer without affinity: request n goes to
// replica n mod 2. It records which replica served which session.
type alternating struct {
	token string
	hosts [2]string
	mu    sync.Mutex
	n     int
	seen  map[string][2]int // session id → requests per replica
}

func (a *alternating) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+a.token)
	a.mu.Lock()
	i := a.n % 2
	a.n++
	if sid := req.Header.Get("Mcp-Session-Id"); sid != "" {
		c := a.seen[sid]
		c[i]++
		a.seen[sid] = c
	}
	a.mu.Unlock()
	req.URL.Host = a.hosts[i]
	req.Host = a.hosts[i]
	return http.DefaultTransport.RoundTrip(req)
}

func (r *replicas) connect(t *testing.T, token string) (*mcp.ClientSession, *alternating) {
	t.Helper()
	lb := &alternating{token: token, seen: map[string][2]int{}}
	for i, u := range r.urls {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		lb.hosts[i] = parsed.Host
	}
	tr := &mcp.StreamableClientTransport{Endpoint: r.urls[0] + "/mcp", HTTPClient: &http.Client{Transport: lb}, MaxRetries: -1}
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0"}, nil)
	cs, err := client.Connect(t.Context(), tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, lb
}

func TestSessionAcrossReplicas(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shared func(t *testing.T) kv.Store
	}{
		{"memory", func(*testing.T) kv.Store { return kv.NewMemory(nil) }},
		{"valkey", func(t *testing.T) kv.Store { return valkey(t, redistest.New(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplicas(t, tc.shared(t))
			cs, lb := r.connect(t, r.token(t, alice))
			if cs.ID() == "" {
				t.Fatal("no session id: the client did not open a session")
			}

			content := "Release trains leave every Tuesday; hotfixes ride the next train unless the incident is sev1."
			var added mcpserver.AddMemoriesOutput
			mustOK(t, "add_memories", call(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{"content": content, "category": "workflow"}}}, &added))
			id := added.Results[0].ID
			for range 3 {
				var found mcpserver.SearchOutput
				mustOK(t, "search_memory", call(t, cs, "search_memory", map[string]any{"query": "release train hotfix"}, &found))
				if len(found.Results) != 1 || found.Results[0].ID != id {
					t.Fatalf("search: got %+v, want %s", found.Results, id)
				}
			}
			mustOK(t, "update_memory", call(t, cs, "update_memory", map[string]any{"id": id, "content": content + " Sev2 waits."}, nil))
			var got mcpserver.MemoryView
			mustOK(t, "get_memory", call(t, cs, "get_memory", map[string]any{"id": id}, &got))
			if !strings.HasSuffix(got.Content, "Sev2 waits.") {
				t.Errorf("get after update: %q", got.Content)
			}
			var me mcpserver.WhoamiOutput
			mustOK(t, "whoami", call(t, cs, "whoami", nil, &me))
			if me.Sub != "alice" {
				t.Errorf("whoami: %+v", me)
			}

			lb.mu.Lock()
			served := lb.seen[cs.ID()]
			lb.mu.Unlock()
			if served[0] < 3 || served[1] < 3 {
				t.Fatalf("session requests per replica %v: want both replicas to serve several", served)
			}

			// The binding travels with the session: another principal is
			// refused on either replica.
			hdr := map[string]string{"Mcp-Session-Id": cs.ID(), "Mcp-Protocol-Version": "2025-11-25"}
			for _, u := range r.urls {
				if resp, body := post(t, u+"/mcp", r.token(t, bob), hdr, callWhoami); resp.StatusCode != http.StatusForbidden {
					t.Errorf("bob on alice's session at %s: status %d (%s), want 403", u, resp.StatusCode, body)
				}
			}
			if resp, body := post(t, r.urls[1]+"/mcp", r.token(t, alice), map[string]string{"Mcp-Session-Id": "no-such-session"}, callWhoami); resp.StatusCode != http.StatusNotFound {
				t.Errorf("unknown session: status %d (%s), want 404", resp.StatusCode, body)
			}

			// Closing sends DELETE to one replica; the session is gone on both.
			sid := cs.ID()
			if err := cs.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			for _, u := range r.urls {
				if resp, body := post(t, u+"/mcp", r.token(t, alice), map[string]string{"Mcp-Session-Id": sid}, callWhoami); resp.StatusCode != http.StatusNotFound {
					t.Errorf("closed session at %s: status %d (%s), want 404", u, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestSessionsWhileValkeyDown kills redis-server under two replicas: requests
// on sessions fail with 503 and Retry-After, stateless (2026-07-28) requests
// go on; when redis-server is back the replicas recover without a restart.
// redis-server here keeps nothing on disk, so bindings made before the
// outage are gone and those clients start new sessions (404 tells them to).
func TestSessionsWhileValkeyDown(t *testing.T) {
	rs := redistest.New(t)
	r := newReplicas(t, valkey(t, rs))
	token := r.token(t, alice)
	cs, _ := r.connect(t, token)
	mustOK(t, "whoami", call(t, cs, "whoami", nil, nil))
	hdr := map[string]string{"Mcp-Session-Id": cs.ID(), "Mcp-Protocol-Version": "2025-11-25"}

	rs.Stop()
	for _, u := range r.urls {
		resp, body := post(t, u+"/mcp", token, hdr, callWhoami)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("session request at %s with valkey down: status %d Retry-After %q (%s), want 503 with Retry-After",
				u, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, body := post(t, r.urls[0]+"/mcp", token, nil, initialize); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Mcp-Session-Id") != "" {
		t.Errorf("initialize with valkey down: status %d, session %q (%s), want 503 and no session",
			resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), body)
	}
	stateless := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "whoami"}
	if resp, body := post(t, r.urls[1]+"/mcp", token, stateless, callWhoami2026); resp.StatusCode != http.StatusOK || !strings.Contains(body, `\"sub\":\"alice\"`) {
		t.Errorf("stateless request with valkey down: status %d (%s), want 200", resp.StatusCode, body)
	}

	if err := rs.Start(); err != nil {
		t.Fatal(err)
	}
	if resp, body := post(t, r.urls[1]+"/mcp", token, hdr, callWhoami); resp.StatusCode != http.StatusNotFound {
		t.Errorf("pre-outage session after valkey lost its data: status %d (%s), want 404", resp.StatusCode, body)
	}
	again, _ := r.connect(t, token)
	for range 4 {
		mustOK(t, "whoami", call(t, again, "whoami", nil, nil))
	}
}

const (
	initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

	callWhoami2026 = `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"whoami","arguments":{},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`
)

func valkey(t *testing.T, rs *redistest.Server) kv.Store {
	t.Helper()
	v, err := kv.NewValkey(rs.URL(), "codingbrain-test:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	return v
}
