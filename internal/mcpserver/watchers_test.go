package mcpserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/memory"
	"github.com/codingbrain/codingbrain/internal/store/sqlite"
)

// TestWatchersForgetStatelessSessions: every stateless request has a
// session of its own; the principals remembered for list_changed must not
// pile up while no write sweeps them.
func TestWatchersForgetStatelessSessions(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "codingbrain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dev := &auth.Principal{Subject: "dev", OrgID: "local", Scopes: auth.AllScopes}
	s := New(memory.NewService(store, memory.Options{}), Options{DevPrincipal: dev})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	const body = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`
	for range 500 {
		req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", "whoami")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("whoami: %d", resp.StatusCode)
		}
	}
	s.watch.mu.Lock()
	n := len(s.watch.who)
	s.watch.mu.Unlock()
	if n == 0 || n > 200 {
		t.Errorf("after 500 stateless requests %d sessions are remembered; want some, and at most 200", n)
	}
}
