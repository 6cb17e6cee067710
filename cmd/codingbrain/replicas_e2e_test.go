//go:build unix

package main

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/codingbrain/codingbrain/client"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/pgtest"
	"github.com/codingbrain/codingbrain/internal/redistest"
)

// TestTwoReplicas runs two serve processes on one PostgreSQL database and
// one redis-server, as behind a load balancer: what one replica writes the
// other finds at once, and an MCP session whose requests alternate between
// them keeps working.
func TestTwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := pgtest.Database(t)
	rs := redistest.New(t)
	bin := buildBinary(t)
	dataDir := t.TempDir() // shared: both replicas read the one signing key
	// Behind one load balancer the replicas share a public URL, the
	// audience of their tokens.
	flags := []string{"--database-url", dbURL, "--valkey-url", rs.URL(), "--migrate", "--public-url", "http://brain.test"}
	a := startServer(t, bin, dataDir, flags...)
	b := launch(t, bin, dataDir, flags...)
	token := a.admin
	ctx := t.Context()
	ca, cb := client.New(a.url, token), client.New(b.url, token)

	t.Run("rest", func(t *testing.T) {
		content := "Replica A wrote this: the payments service retries idempotently with exponential backoff."
		m, created, err := ca.Add(ctx, memory.Input{Content: content, Category: "convention"}, "")
		if err != nil || !created {
			t.Fatalf("add on A: %v, created %v", err, created)
		}
		// B's very first search finds it: search reads the system of
		// record, so there is no replication delay to wait out.
		res, err := cb.Search(ctx, client.SearchRequest{Query: "payments retries backoff"})
		hits := res.Hits
		if err != nil || len(hits) != 1 || hits[0].Memory.ID != m.ID {
			t.Fatalf("search on B right after the write on A: %+v, %v", hits, err)
		}

		changed := "Replica A changed this: the payments service retries with jittered backoff, at most five times."
		if _, err := ca.Update(ctx, m.ID, memory.Patch{Content: &changed}); err != nil {
			t.Fatalf("update on A: %v", err)
		}
		res, err = cb.Search(ctx, client.SearchRequest{Query: "payments jittered"})
		hits = res.Hits
		if err != nil || len(hits) != 1 || hits[0].Memory.Content != changed {
			t.Fatalf("search on B after the update on A: %+v, %v", hits, err)
		}
		// Hybrid search may still return the memory for a similar query
		// (by its vector), but only ever with its current content.
		res, err = cb.Search(ctx, client.SearchRequest{Query: "exponential"})
		if err != nil {
			t.Fatalf("search on B for the old wording: %v", err)
		}
		for _, h := range res.Hits {
			if strings.Contains(h.Memory.Content, "exponential") {
				t.Errorf("B still serves the old content: %q", h.Memory.Content)
			}
		}

		if _, err := cb.Delete(ctx, m.ID); err != nil {
			t.Fatalf("delete on B: %v", err)
		}
		if res, err := ca.Search(ctx, client.SearchRequest{Query: "payments jittered"}); err != nil || len(res.Hits) != 0 {
			t.Errorf("A finds a memory deleted on B: %+v, %v", res.Hits, err)
		}
		if _, err := ca.Get(ctx, m.ID); !errors.Is(err, memory.ErrNotFound) {
			t.Errorf("get on A after delete on B: %v, want not found", err)
		}
	})

	t.Run("mcp session alternating", func(t *testing.T) {
		lb := newRoundRobin(t, token, a.url, b.url)
		tr := &mcp.StreamableClientTransport{Endpoint: a.url + "/mcp", HTTPClient: &http.Client{Transport: lb}, MaxRetries: -1}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "replica-test", Version: "1"}, nil).
			Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer cs.Close()
		if cs.ID() == "" {
			t.Fatal("no MCP session was opened")
		}

		var added struct {
			Results []struct{ ID, Status string } `json:"results"`
		}
		mustTool(t, cs, "add_memories", map[string]any{"memories": []any{map[string]any{
			"content": "Schema changes ship as expand and contract migrations across two releases.", "category": "convention"}}}, &added)
		if len(added.Results) != 1 || added.Results[0].Status != "created" {
			t.Fatalf("add_memories: %+v", added)
		}
		id := added.Results[0].ID
		for i := range 6 {
			var found struct {
				Results []struct{ ID string } `json:"results"`
			}
			mustTool(t, cs, "search_memory", map[string]any{"query": "expand contract migrations"}, &found)
			if len(found.Results) != 1 || found.Results[0].ID != id {
				t.Fatalf("search %d: %+v", i, found)
			}
		}
		mustTool(t, cs, "delete_memories", map[string]any{"ids": []string{id}}, nil)

		served := lb.served(cs.ID())
		if served[0] < 3 || served[1] < 3 {
			t.Errorf("session requests per replica: A %d, B %d; want both to serve several", served[0], served[1])
		}
	})

	// Without redis-server, sessions cannot be checked: their requests
	// fail with 503 on both replicas while REST carries on. When it is back
	// the replicas recover on their own; this redis-server keeps nothing on
	// disk, so clients open new sessions.
	t.Run("valkey outage", func(t *testing.T) {
		connect := func() (*mcp.ClientSession, error) {
			tr := &mcp.StreamableClientTransport{Endpoint: a.url + "/mcp",
				HTTPClient: &http.Client{Transport: newRoundRobin(t, token, a.url, b.url)}, MaxRetries: -1}
			return mcp.NewClient(&mcp.Implementation{Name: "replica-test", Version: "1"}, nil).
				Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		}
		cs, err := connect()
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer cs.Close()
		rs.Stop()
		for _, srv := range []*server{a, b} {
			code, body := mcpPost(t, srv.url, token, cs.ID())
			if code != http.StatusServiceUnavailable {
				t.Errorf("session request on %s with redis down: %d %s, want 503", srv.url, code, body)
			}
		}
		if _, err := connect(); err == nil {
			t.Error("a new session opened while redis-server is down")
		}
		if _, err := cb.Search(ctx, client.SearchRequest{Query: "anything"}); err != nil {
			t.Errorf("REST search with redis down: %v", err)
		}

		if err := rs.Start(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a new MCP session after redis-server is back", func() error {
			again, err := connect()
			if err != nil {
				return err
			}
			defer again.Close()
			for range 4 {
				if _, err := again.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"}); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// mcpPost sends one tools/call on session sid and returns status and body.
func mcpPost(t *testing.T, base, token, sid string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// roundRobin sends request n to replica n mod 2, with the token, and counts
// which replica served each MCP session.
type roundRobin struct {
	token string
	hosts [2]string
	mu    sync.Mutex
	n     int
	seen  map[string][2]int
}

func newRoundRobin(t *testing.T, token string, urls ...string) *roundRobin {
	t.Helper()
	rr := &roundRobin{token: token, seen: map[string][2]int{}}
	for i, u := range urls {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		rr.hosts[i] = p.Host
	}
	return rr
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+rr.token)
	rr.mu.Lock()
	i := rr.n % 2
	rr.n++
	if sid := req.Header.Get("Mcp-Session-Id"); sid != "" {
		c := rr.seen[sid]
		c[i]++
		rr.seen[sid] = c
	}
	rr.mu.Unlock()
	req.URL.Host, req.Host = rr.hosts[i], rr.hosts[i]
	return http.DefaultTransport.RoundTrip(req)
}

func (rr *roundRobin) served(sid string) [2]int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.seen[sid]
}

// mustTool calls a tool and fails the test on any error, including a tool
// error; out, when not nil, receives the structured result.
func mustTool(t *testing.T, cs *mcp.ClientSession, name string, args, out any) {
	t.Helper()
	if res := callTool(t, cs, name, args, out); res.IsError {
		t.Fatalf("%s: tool error: %v", name, res.Content)
	}
}
