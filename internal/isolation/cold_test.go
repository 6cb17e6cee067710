package isolation

import (
	"net/http"
	"testing"
	"time"

	"github.com/codingbrain/codingbrain/internal/auth"
	"github.com/codingbrain/codingbrain/internal/mcpserver"
	"github.com/codingbrain/codingbrain/internal/memory"
)

// TestColdTier: with every memory moved to the cold tier, a search with
// include_cold — over REST and over MCP — finds exactly what the same
// search finds on hot memories (the oracle), never a memory outside the
// caller's access, and nothing without include_cold; reading a cold memory
// one may not see is a 404 that leaves it cold, while reading a visible
// one brings it back. On SQLite and PostgreSQL (each keeps its own tier
// SQL).
func TestColdTier(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); coldTier(t, newWorld(t)) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); coldTier(t, newWorldOn(t, openPostgres(t))) })
}

func coldTier(t *testing.T, w *world) {
	tiers, ok := w.store.(memory.Tiers)
	if !ok {
		t.Fatalf("%T keeps no tiers", w.store)
	}
	n, err := tiers.MoveCold(t.Context(), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 10000)
	if err != nil || n != len(w.entries) {
		t.Fatalf("move every memory cold: moved %d of %d: %v", n, len(w.entries), err)
	}
	w.rerecord(t, "acme")
	w.rerecord(t, "globex")
	for _, e := range w.entries {
		if !e.m.Cold {
			t.Fatalf("memory %s is not cold after the move", e.m.ID)
		}
	}
	cs := w.connectAll(t)
	for _, p := range w.principals {
		if !can(p, auth.ScopeSearchRead) {
			continue
		}
		if got := w.search(t, p, map[string]any{"query": "canary", "limit": 100, "filters": map[string]any{"state": everyState}}); len(got) != 0 {
			t.Errorf("%s: search without include_cold found cold memories %v", p.name, got)
		}
		wantIDs(t, p, "search with include_cold", w.search(t, p, map[string]any{"query": "canary", "limit": 100, "include_cold": true}), w.live(p))
		wantIDs(t, p, "search with include_cold of every state", w.search(t, p, map[string]any{"query": "isolation canary", "limit": 100,
			"include_cold": true, "filters": map[string]any{"state": everyState}}), w.visible(p))
		for _, ent := range w.entities() {
			got := w.search(t, p, map[string]any{"query": "canary note", "limit": 100, "include_cold": true, "filters": map[string]any{"access_entity": ent, "state": everyState}})
			wantIDs(t, p, "search with include_cold in "+ent, got, w.filter(func(e *entry) bool { return p.sees(e.m) && e.m.AccessEntity == ent }))
		}
		for _, e := range w.hidden(p) {
			for _, mode := range []string{"hybrid", "lexical"} {
				if got := w.search(t, p, map[string]any{"query": e.marker, "mode": mode, "include_cold": true, "filters": map[string]any{"state": everyState}}); len(got) != 0 {
					t.Errorf("%s: %s search with include_cold for the unique word of hidden memory %s found %v", p.name, mode, e.m.ID, got)
				}
			}
		}
		// The same over MCP.
		search := func(what string, args map[string]any) []string {
			t.Helper()
			return w.searchMCP(t, cs, p, what, args, func(v mcpserver.MemoryView) {
				if !v.Cold {
					t.Errorf("%s: %s: memory %s is not marked cold", p.name, what, v.ID)
				}
			})
		}
		wantIDs(t, p, "search_memory with include_cold", search("search_memory with include_cold",
			map[string]any{"query": "canary", "limit": 100, "include_cold": true, "detail": "full"}), w.live(p))
		wantIDs(t, p, "search_memory with include_cold of every state", search("search_memory with include_cold of every state",
			map[string]any{"query": "isolation canary", "limit": 100, "include_cold": true, "detail": "full", "filters": map[string]any{"state": everyState}}), w.visible(p))
		for _, e := range w.hidden(p) {
			if got := search("search_memory with include_cold for "+e.marker, map[string]any{"query": e.marker, "include_cold": true,
				"filters": map[string]any{"state": everyState}}); len(got) != 0 {
				t.Errorf("%s: search_memory with include_cold for the unique word of hidden memory %s found %v", p.name, e.m.ID, got)
			}
		}
	}
	w.allUnchanged(t, "searches of the cold tier")

	// Reading what one may not see warms nothing.
	for _, p := range w.principals {
		if !can(p, auth.ScopeMemoriesRead) {
			continue
		}
		ghost := w.do(t, "GET", "/api/v1/memories/"+ghostID, p.token, nil)
		for _, e := range w.hidden(p) {
			w.want404(t, p, "get cold "+e.m.ID, w.do(t, "GET", "/api/v1/memories/"+e.m.ID, p.token, nil), ghost, e.m.ID)
			if r := call(t, cs[p], "get_memory", map[string]any{"id": e.m.ID}); !r.failed() {
				t.Errorf("%s: get_memory of cold hidden %s: %s", p.name, e.m.ID, r.raw)
			}
		}
	}
	w.allUnchanged(t, "reads of cold memories outside the caller's access")
	// A visible one comes back.
	luke := w.principal("luke@acme")
	for _, e := range w.live(luke) {
		if r := w.do(t, "GET", "/api/v1/memories/"+e.m.ID, luke.token, nil); r.status != http.StatusOK {
			t.Fatalf("luke@acme: get its cold %s: %d %s", e.m.ID, r.status, r.body)
		}
		m, err := w.store.Get(t.Context(), ownerAccess(e.m), e.m.ID)
		if err != nil || m.Cold {
			t.Errorf("luke@acme read its cold %s: cold=%v %v, want it back in the hot tier", e.m.ID, m.Cold, err)
		}
		e.m = m
	}
	w.allUnchanged(t, "luke@acme warming its own memories")
}
